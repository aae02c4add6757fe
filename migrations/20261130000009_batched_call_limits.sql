-- Releases leases and grants calls for many requests at once (a worker gathers the releases
-- and requests of all its concurrent lookups; releasing first, in the same statement, lets a
-- slot freed by one lookup go to the next one asked for after it): each provider's budget row
-- is locked once, in provider order (so two batches cannot deadlock), its expired leases
-- dropped and its calls in flight summed once, and its free slots and tokens handed to its
-- requests in the order given. One row per request, by `ordinal` (1-based): `granted` calls
-- under lease `lease_id`; when none, `retry_after_ms` says when the rate limit lets the next
-- call go, or is null when the concurrency limit holds it back (the caller polls).
--
-- It replaces the one-request `acquire_provider_calls`, which nothing calls any more.
drop function acquire_provider_calls(uuid, integer, integer, integer, interval);

create function acquire_provider_calls_batch(
    released uuid[],
    providers uuid[],
    wanted integer[],
    concurrency integer[],
    per_minute integer[],
    holds interval[]
)
returns table (ordinal integer, lease_id uuid, granted integer, retry_after_ms integer)
language plpgsql as $$
declare
    now_at timestamptz := clock_timestamp();
    provider_row record;
    request record;
    bucket double precision;
    bucket_at timestamptz;
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
        select b.tokens, b.refilled_at into bucket, bucket_at
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
            free := free - granted;
            if provider_row.per_minute is not null then
                bucket := bucket - granted;
            end if;
            if granted > 0 then
                insert into provider_call_lease (enrichment_provider_id, calls, expires_at)
                values (provider_row.provider, granted, now_at + request.hold)
                returning provider_call_lease.lease_id into lease_id;
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
