-- Provider call limits that hold across every worker process: a provider's concurrency limit
-- (calls in flight) and rate limit (calls per minute, a token bucket whose capacity is one
-- minute's worth). Both tables hold only short-lived state, so they are unlogged: after a crash
-- they come back empty, which releases every lease and refills every bucket.

create unlogged table provider_call_budget (
    enrichment_provider_id uuid primary key
        references enrichment_provider (enrichment_provider_id) on delete cascade,
    tokens double precision not null,
    refilled_at timestamptz not null
);

-- Calls granted to one worker for one batch of lookups, released when the batch ends or, if
-- its worker dies, when the lease expires.
create unlogged table provider_call_lease (
    lease_id uuid primary key default gen_random_uuid(),
    enrichment_provider_id uuid not null
        references enrichment_provider (enrichment_provider_id) on delete cascade,
    calls integer not null check (calls > 0),
    expires_at timestamptz not null
);
create index provider_call_lease_provider_idx on provider_call_lease (enrichment_provider_id);

-- Grants up to `wanted` calls to `provider` within its limits. `granted` is 0 when none can go
-- now; `retry_after_ms` then says when the rate limit lets the next call go, or is null when
-- the concurrency limit is what holds it back (the caller polls).
create function acquire_provider_calls(
    provider uuid,
    wanted integer,
    concurrency integer,
    per_minute integer,
    hold interval,
    out lease_id uuid,
    out granted integer,
    out retry_after_ms integer
)
language plpgsql as $$
declare
    now_at timestamptz := clock_timestamp();
    bucket double precision;
    bucket_at timestamptz;
    in_flight integer;
    free integer;
begin
    insert into provider_call_budget as b (enrichment_provider_id, tokens, refilled_at)
    values (provider, coalesce(per_minute, 0), now_at)
    on conflict (enrichment_provider_id) do nothing;
    -- The budget row serializes every grant for this provider.
    select b.tokens, b.refilled_at into bucket, bucket_at
    from provider_call_budget b where b.enrichment_provider_id = provider for update;

    delete from provider_call_lease l where l.enrichment_provider_id = provider and l.expires_at <= now_at;
    select coalesce(sum(l.calls), 0) into in_flight
    from provider_call_lease l where l.enrichment_provider_id = provider;
    free := greatest(concurrency - in_flight, 0);
    if per_minute is not null then
        bucket := least(per_minute::double precision,
                        bucket + extract(epoch from now_at - bucket_at) * per_minute / 60.0);
        free := least(free, floor(bucket)::integer);
    end if;

    granted := greatest(least(wanted, free), 0);
    if per_minute is not null then
        update provider_call_budget b set tokens = bucket - granted, refilled_at = now_at
        where b.enrichment_provider_id = provider;
    end if;
    if granted > 0 then
        insert into provider_call_lease (enrichment_provider_id, calls, expires_at)
        values (provider, granted, now_at + hold)
        returning provider_call_lease.lease_id into lease_id;
    elsif per_minute is not null and bucket < 1 then
        retry_after_ms := ceil((1 - bucket) * 60000.0 / per_minute)::integer;
    end if;
end
$$;
