-- Ingest marks its transactions so the job trigger skips its NOTIFY: at thousands of alerts a
-- second, a NOTIFY per commit serializes commits on PostgreSQL's notification queue lock.
-- The server sends the wake-up itself right after the commit instead, coalesced
-- (`domain::notify::JobWaker`). Every other enqueue path still notifies from its transaction.
create or replace function job_notify() returns trigger language plpgsql as $$
begin
    if current_setting('alertgraph.wakeup_deferred', true) is distinct from 'on' then
        perform pg_notify('alertgraph_job_queued', '');
    end if;
    return null;
end;
$$;

-- The ingest write: a batch of normalized alerts in one round trip and one transaction.
-- The server groups concurrent ingest requests (`domain::ingest::writer`), so at load one commit
-- and one WAL flush serve many alerts; each request is answered after this commit.
--
-- Identical alerts (same fingerprint) take the same advisory lock and are decided one after the
-- other, in this batch or across concurrent batches; the lock is held until commit. Callers sort
-- a batch by lock key, so two batches always lock in the same order and cannot deadlock.
-- PL/pgSQL takes a fresh snapshot for each statement of a volatile function under READ
-- COMMITTED, so the lookup after a lock sees an identical alert committed while we waited, and
-- one inserted earlier in this same batch.
create function ingest_alerts(
    alert_ids uuid[],
    fingerprints bytea[],
    lock_keys bigint[],
    titles text[],
    descriptions text[],
    severities text[],
    source_names text[],
    occurred_ats timestamptz[],
    -- One JSON array of strings per alert: SQL arrays of arrays must be rectangular.
    tag_lists jsonb[],
    raw_payloads text[],
    job_payloads jsonb[],
    actors text[],
    dedup_window interval,
    job_kind text
)
returns table (batch_index integer, alert_id uuid, duplicate_count integer, deduplicated boolean)
language plpgsql
volatile
as $$
declare
    i integer;
    existing_id uuid;
    counted integer;
begin
    perform set_config('alertgraph.wakeup_deferred', 'on', true);
    for i in 1 .. coalesce(array_length(alert_ids, 1), 0) loop
        existing_id := null;
        if dedup_window > interval '0' then
            perform pg_advisory_xact_lock(lock_keys[i]);
            select a.alert_id into existing_id
            from alert a
            where a.fingerprint = fingerprints[i] and a.ingested_at > now() - dedup_window
            order by a.ingested_at desc
            limit 1;
        end if;

        if existing_id is not null then
            update alert a
            set duplicate_count = a.duplicate_count + 1, last_duplicate_at = now(),
                updated_at = now()
            where a.alert_id = existing_id
            returning a.duplicate_count into counted;
            insert into activity (alert_id, event_type, actor, details)
            values (existing_id, 'alert.deduplicated', actors[i],
                    jsonb_build_object('duplicate_count', counted));
            alert_id := existing_id;
            duplicate_count := counted;
            deduplicated := true;
        else
            insert into alert (alert_id, title, description, severity, source_name,
                               occurred_at, tags, raw_payload, fingerprint)
            values (alert_ids[i], titles[i], descriptions[i], severities[i]::severity,
                    source_names[i], occurred_ats[i],
                    array(select jsonb_array_elements_text(tag_lists[i])),
                    raw_payloads[i]::json, fingerprints[i]);
            insert into job (kind, payload) values (job_kind, job_payloads[i]);
            insert into activity (alert_id, event_type, actor, details)
            values (alert_ids[i], 'alert.ingested', actors[i],
                    jsonb_build_object('source', source_names[i]));
            alert_id := alert_ids[i];
            duplicate_count := 0;
            deduplicated := false;
        end if;
        batch_index := i;
        return next;
    end loop;
end;
$$;
