-- Each indicator's provider results carry a version that every change to them bumps, so a
-- server may keep results it has read and learn from this one column, read with the indicator,
-- whether they are still current (GraphQL's result cache, `server::graphql::results`).
--
-- Results are written only by `domain::store::enrichment::save`, which bumps the version in the
-- same statement as it writes them (it updates the indicator's verdict there anyway). Deletes,
-- including those cascading from a deleted provider, bump it here.
alter table indicator add column results_version bigint not null default 0;

create function bump_results_version_on_delete() returns trigger
language plpgsql as $$
begin
    update indicator i set results_version = i.results_version + 1
    where i.indicator_id in (select distinct indicator_id from deleted);
    return null;
end
$$;

create trigger enrichment_result_deleted
    after delete on enrichment_result
    referencing old table as deleted
    for each statement execute function bump_results_version_on_delete();
