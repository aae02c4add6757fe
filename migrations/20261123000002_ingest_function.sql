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

-- The ingest write as one round trip. Called in autocommit, so the statement is its own
-- transaction: the advisory lock below is held until the alert (or the duplicate count) is
-- committed, and released at once after.
--
-- Identical alerts (same fingerprint) take the same lock and are decided one after the other.
-- PL/pgSQL takes a fresh snapshot for each statement of a volatile function under READ
-- COMMITTED, so the lookup after the lock sees an identical alert committed while we waited.
create function ingest_alert(
    new_alert_id uuid,
    new_fingerprint bytea,
    dedup_window interval,
    lock_key bigint,
    new_title text,
    new_description text,
    new_severity severity,
    new_source_name text,
    new_occurred_at timestamptz,
    new_tags text[],
    new_raw_payload text,
    job_kind text,
    job_payload jsonb,
    actor text,
    out alert_id uuid,
    out duplicate_count integer,
    out deduplicated boolean
)
language plpgsql
volatile
as $$
declare
    existing_id uuid;
begin
    if dedup_window > interval '0' then
        perform pg_advisory_xact_lock(lock_key);
        select a.alert_id into existing_id
        from alert a
        where a.fingerprint = new_fingerprint and a.ingested_at > now() - dedup_window
        order by a.ingested_at desc
        limit 1;
        if found then
            update alert a
            set duplicate_count = a.duplicate_count + 1, last_duplicate_at = now(),
                updated_at = now()
            where a.alert_id = existing_id
            returning a.alert_id, a.duplicate_count into alert_id, duplicate_count;
            insert into activity (alert_id, event_type, actor, details)
            values (existing_id, 'alert.deduplicated', actor,
                    jsonb_build_object('duplicate_count', duplicate_count));
            deduplicated := true;
            return;
        end if;
    end if;

    insert into alert (alert_id, title, description, severity, source_name, occurred_at, tags,
                       raw_payload, fingerprint)
    values (new_alert_id, new_title, new_description, new_severity, new_source_name,
            new_occurred_at, new_tags, new_raw_payload::json, new_fingerprint);
    perform set_config('alertgraph.wakeup_deferred', 'on', true);
    insert into job (kind, payload) values (job_kind, job_payload);
    insert into activity (alert_id, event_type, actor, details)
    values (new_alert_id, 'alert.ingested', actor, jsonb_build_object('source', new_source_name));
    alert_id := new_alert_id;
    duplicate_count := 0;
    deduplicated := false;
end;
$$;
