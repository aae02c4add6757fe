-- A provider that answers 429 is paused for every worker until its `Retry-After` has passed
-- (SPEC §4: 429 honours Retry-After): the worker that got the answer records the pause, and
-- `acquire_provider_calls_batch` grants no call to the provider until then, answering how long
-- is left and that it is a pause. Like the rest of the budget, the pause is short-lived state in
-- an unlogged table.
alter table provider_call_budget add column paused_until timestamptz;

-- Pauses each provider given until the interval given from now, unless it is paused longer
-- already. A provider named twice takes its longest pause.
create function pause_provider_calls(providers uuid[], pauses interval[])
returns void
language sql as $$
    insert into provider_call_budget as b (enrichment_provider_id, tokens, refilled_at, paused_until)
    -- A new row's bucket is full: acquiring caps it at the provider's rate limit.
    select p.provider, 'infinity'::double precision, clock_timestamp(),
           clock_timestamp() + max(p.pause)
    from unnest(providers, pauses) as p(provider, pause)
    group by p.provider
    on conflict (enrichment_provider_id) do update
    set paused_until = greatest(b.paused_until, excluded.paused_until);
$$;

-- As in `20261130000009_batched_call_limits.sql`, with the pause: a paused provider's requests
-- are granted nothing, with `retry_after_ms` until the pause ends and `paused` true.
drop function acquire_provider_calls_batch(uuid[], uuid[], integer[], integer[], integer[], interval[]);

create function acquire_provider_calls_batch(
    released uuid[],
    providers uuid[],
    wanted integer[],
    concurrency integer[],
    per_minute integer[],
    holds interval[]
)
returns table (ordinal integer, lease_id uuid, granted integer, retry_after_ms integer, paused boolean)
language plpgsql as $$
declare
    now_at timestamptz := clock_timestamp();
    provider_row record;
    request record;
    bucket double precision;
    bucket_at timestamptz;
    paused_until_at timestamptz;
    in_flight integer;
    free integer;
begin
    delete from provider_call_lease l where l.lease_id = any(released);
    for provider_row in
        select r.provider, min(r.concurrency) as concurrency, min(r.per_minute) as per_minute
        from unnest(providers, concurrency, per_minute) as r(provider, concurrency, per_minute)
        group by r.provider
        order by r.provider
    loop
        insert into provider_call_budget as b (enrichment_provider_id, tokens, refilled_at)
        values (provider_row.provider, coalesce(provider_row.per_minute, 0), now_at)
        on conflict (enrichment_provider_id) do nothing;
        select b.tokens, b.refilled_at, b.paused_until into bucket, bucket_at, paused_until_at
        from provider_call_budget b where b.enrichment_provider_id = provider_row.provider
        for update;

        delete from provider_call_lease l
        where l.enrichment_provider_id = provider_row.provider and l.expires_at <= now_at;
        select coalesce(sum(l.calls), 0) into in_flight
        from provider_call_lease l where l.enrichment_provider_id = provider_row.provider;
        free := greatest(provider_row.concurrency - in_flight, 0);
        if provider_row.per_minute is not null then
            bucket := least(provider_row.per_minute::double precision,
                            bucket + extract(epoch from now_at - bucket_at)
                                     * provider_row.per_minute / 60.0);
            free := least(free, floor(bucket)::integer);
        end if;
        if paused_until_at > now_at then
            free := 0;
        end if;

        for request in
            select r.ordinal, r.wanted, r.hold
            from unnest(providers, wanted, holds) with ordinality as r(provider, wanted, hold, ordinal)
            where r.provider = provider_row.provider
            order by r.ordinal
        loop
            ordinal := request.ordinal;
            granted := greatest(least(request.wanted, free), 0);
            lease_id := null;
            retry_after_ms := null;
            paused := false;
            free := free - granted;
            if provider_row.per_minute is not null then
                bucket := bucket - granted;
            end if;
            if granted > 0 then
                insert into provider_call_lease (enrichment_provider_id, calls, expires_at)
                values (provider_row.provider, granted, now_at + request.hold)
                returning provider_call_lease.lease_id into lease_id;
            elsif paused_until_at > now_at then
                retry_after_ms := ceil(extract(epoch from paused_until_at - now_at) * 1000.0)::integer;
                paused := true;
            elsif provider_row.per_minute is not null and bucket < 1 then
                retry_after_ms := ceil((1 - bucket) * 60000.0 / provider_row.per_minute)::integer;
            end if;
            return next;
        end loop;

        if provider_row.per_minute is not null then
            update provider_call_budget b set tokens = bucket, refilled_at = now_at
            where b.enrichment_provider_id = provider_row.provider;
        end if;
    end loop;
end
$$;
