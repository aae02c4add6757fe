-- Live alert events for GraphQL subscriptions (SPEC §6): every server process LISTENs on
-- `alertgraph_alert_events` and fans events out to its subscribers, so an event committed by any
-- worker reaches subscribers on every replica. The payload names the alert and the kind of
-- change; listeners read the alert itself. Sent from the changing transaction: delivered on
-- commit, dropped on rollback.
create function alert_event_notify() returns trigger language plpgsql as $$
begin
    if new.enriched_at is distinct from old.enriched_at then
        perform pg_notify('alertgraph_alert_events',
                          json_build_object('kind', 'enriched', 'alert_id', new.alert_id)::text);
    elsif (new.status, new.severity, new.tags, new.malice, new.malice_override,
           new.close_classification, new.duplicate_count, new.detection_rule_id)
          is distinct from
          (old.status, old.severity, old.tags, old.malice, old.malice_override,
           old.close_classification, old.duplicate_count, old.detection_rule_id) then
        perform pg_notify('alertgraph_alert_events',
                          json_build_object('kind', 'updated', 'alert_id', new.alert_id)::text);
    end if;
    return null;
end;
$$;

create trigger alert_event_notify after update on alert
    for each row execute function alert_event_notify();
