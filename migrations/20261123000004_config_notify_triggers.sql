-- Every change to configuration that processes cache wakes them from the changing
-- transaction, as `job_notify` does for jobs: delivered on commit, dropped on rollback, and no
-- code path can forget it. Payloads are empty: listeners re-read the database.
create function config_changed_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('alertgraph_config_changed', '');
    return null;
end;
$$;

create trigger indicator_mapping_notify after insert or update or delete on indicator_mapping
    for each statement execute function config_changed_notify();
create trigger enrichment_provider_notify after insert or update or delete on enrichment_provider
    for each statement execute function config_changed_notify();
create trigger field_extraction_notify after insert or update or delete on field_extraction
    for each statement execute function config_changed_notify();

create function api_key_changed_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('alertgraph_api_key_changed', '');
    return null;
end;
$$;

create trigger api_key_notify after insert or update or delete on api_key
    for each statement execute function api_key_changed_notify();
