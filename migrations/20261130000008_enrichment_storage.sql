-- Large JSON values (raw alert payloads, providers' raw responses) are compressed when stored.
-- PostgreSQL's default, pglz, costs several times the CPU of lz4 for a worse ratio on JSON; use
-- lz4 where the server was built with it (every mainstream build of PostgreSQL 14 and later).
-- Values already stored keep their compression until they are rewritten.
do $$
begin
    alter table alert alter column raw_payload set compression lz4;
    alter table enrichment_result alter column raw set compression lz4;
    alter table enrichment_result alter column extracted set compression lz4;
exception
    when feature_not_supported then
        raise notice 'this PostgreSQL was built without lz4; keeping pglz compression';
end
$$;

-- Lookup claims are short-lived coordination state, like provider call leases: after a crash
-- they may as well come back empty (every claim released), so they need not be WAL-logged.
alter table enrichment_lookup set unlogged;
