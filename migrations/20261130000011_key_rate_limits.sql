-- Per-key request limits (SPEC §8), shared by every server replica: a key's limit holds for
-- all of them together, not for each.
alter table api_key add column rate_limit_per_minute integer
    constraint api_key_rate_limit_check
        check (rate_limit_per_minute is null or rate_limit_per_minute > 0);

-- The current one-minute window of each limited key and how many of its requests the replicas
-- have taken. Replicas take them in small batches, so a key's row is written a few times a
-- minute, not on every request. `granted` is what the last take got (its statement returns it).
create table api_key_usage (
    api_key_id uuid primary key
        constraint api_key_usage_key_fkey references api_key on delete cascade,
    window_start timestamptz not null,
    used integer not null constraint api_key_usage_used_check check (used >= 0),
    granted integer not null constraint api_key_usage_granted_check check (granted >= 0)
);
