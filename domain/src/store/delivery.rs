//! Deliveries: the `alert.enriched` payload built in one statement (one consistent read of
//! the alert, its indicators with their results, its rule and its documents), one `delivery`
//! row and one `deliver_webhook` job per matching agent, and every attempt.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::job::DELIVER_WEBHOOK;

/// Builds the `alert.enriched` payload (SPEC §5) and creates one delivery, with its job, per
/// agent, all in one statement. `succeeded` and `failed` name the providers of the enrichment
/// run. Returns the delivery ids.
pub async fn create_for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    agent_ids: &[Uuid],
    succeeded: &[String],
    failed: &[String],
    max_attempts: i32,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"with body as (
               select json_build_object(
                   'event', 'alert.enriched',
                   'version', 1,
                   'alert', json_build_object(
                       'uuid', a.alert_id,
                       'title', a.title,
                       'description', a.description,
                       'severity', a.severity,
                       'status', a.status,
                       'source', a.source_name,
                       'source_name', a.source_name,
                       'occurred_at', a.occurred_at,
                       'ingested_at', a.ingested_at,
                       'enriched_at', a.enriched_at,
                       'tags', a.tags,
                       'malice', coalesce(a.malice_override, a.malice),
                       'duplicate_count', a.duplicate_count,
                       '_metadata', json_build_object(
                           'generated_at', now(),
                           'indicator_count',
                               (select count(*) from alert_indicator ai where ai.alert_id = a.alert_id),
                           'enrichment', json_build_object(
                               'succeeded', $3::text[],
                               'failed', $4::text[],
                               'enriched_at', a.enriched_at),
                           'detection_rule_matched', a.detection_rule_id is not null,
                           'context_documents_applied',
                               (select count(*) from alert_context_document c
                                where c.alert_id = a.alert_id))),
                   'indicators', coalesce((
                       select json_agg(json_build_object(
                                  'uuid', i.indicator_id,
                                  'type', i.type,
                                  'value', i.value,
                                  'malice', coalesce(i.malice_override, i.malice),
                                  'first_seen', i.first_seen,
                                  'last_seen', i.last_seen,
                                  'enrichment_results', coalesce((
                                      select json_object_agg(p.name, json_build_object(
                                                 'extracted', r.extracted,
                                                 'success', r.success,
                                                 'enriched_at', r.enriched_at)
                                             order by p.name)
                                      from enrichment_result r
                                      join enrichment_provider p using (enrichment_provider_id)
                                      where r.indicator_id = i.indicator_id), '{}'::json))
                              order by i.type, i.value)
                       from indicator i
                       where i.indicator_id = any(array(
                           select ai.indicator_id from alert_indicator ai
                           where ai.alert_id = a.alert_id))), '[]'::json),
                   'detection_rule', (
                       select json_build_object(
                                  'uuid', r.detection_rule_id,
                                  'name', r.name,
                                  'source_name', r.source_name,
                                  'source_rule_id', r.source_rule_id,
                                  'severity', r.severity,
                                  'mitre_tactics', r.mitre_tactics,
                                  'mitre_techniques', r.mitre_techniques,
                                  'mitre_subtechniques', r.mitre_subtechniques,
                                  'data_sources', r.data_sources,
                                  'documentation', r.documentation)
                       from detection_rule r where r.detection_rule_id = a.detection_rule_id),
                   'context_documents', coalesce((
                       select json_agg(json_build_object(
                                  'uuid', d.context_document_id,
                                  'title', d.title,
                                  'document_type', d.document_type,
                                  'description', d.description,
                                  'content', d.content,
                                  'tags', d.tags,
                                  'version', c.version)
                              order by c.attached_at, d.title)
                       from alert_context_document c join context_document d using (context_document_id)
                       where c.alert_id = a.alert_id), '[]'::json),
                   'workflows', '[]'::json) as payload
               from alert a where a.alert_id = $1
           ),
           created as (
               insert into delivery (delivery_id, agent_id, alert_id, event, payload)
               select gen_random_uuid(), agent_id, $1, 'alert.enriched', body.payload
               from body, unnest($2::uuid[]) as agent_id
               returning delivery_id
           ),
           queued as (
               insert into job (kind, payload, max_attempts)
               select $5, json_build_object('delivery_id', delivery_id), $6 from created
           )
           select delivery_id as "delivery_id!" from created"#,
        alert_id,
        agent_ids,
        succeeded,
        failed,
        DELIVER_WEBHOOK,
        max_attempts,
    )
    .fetch_all(db)
    .await
}

/// What delivering needs: the body as built and the agent's sealed secrets.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    pub alert_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub body: String,
    pub agent: crate::store::agent::AgentSecrets,
}

/// What delivering each of `delivery_ids` needs, for those that exist, in no particular order.
pub async fn outgoing(
    db: impl PgExecutor<'_>,
    delivery_ids: &[Uuid],
) -> Result<Vec<Outgoing>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select d.delivery_id, d.alert_id, d.status, d.attempts, d.payload::text as "body!",
                  g.agent_id, g.name, g.webhook_url, g.auth_header_name, g.auth_header_value,
                  g.signing_secret, g.timeout_seconds, g.is_active
           from delivery d join agent g using (agent_id)
           where d.delivery_id = any($1)"#,
        delivery_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Outgoing {
            delivery_id: row.delivery_id,
            alert_id: row.alert_id,
            status: row.status,
            attempts: row.attempts,
            body: row.body,
            agent: crate::store::agent::AgentSecrets {
                agent_id: row.agent_id,
                name: row.name,
                webhook_url: row.webhook_url,
                auth_header_name: row.auth_header_name,
                auth_header_value: row.auth_header_value,
                signing_secret: row.signing_secret,
                timeout_seconds: row.timeout_seconds,
                is_active: row.is_active,
            },
        })
        .collect())
}

/// One attempt's outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// One attempt to record with [`record_attempts`]: `status` is where the delivery moves
/// (`delivered`, `retrying` with `next_attempt_at`, `failed` or `cancelled`).
#[derive(Debug, Clone)]
pub struct RecordedAttempt {
    pub delivery_id: Uuid,
    pub attempt: Attempt,
    pub status: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Records attempts (at most one per delivery), moves their deliveries to their `status`, and
/// logs each on its alert, in one statement.
pub async fn record_attempts(
    db: impl PgExecutor<'_>,
    attempts: &[RecordedAttempt],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.delivery_id).collect();
    let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.attempt.status_code).collect();
    let latencies: Vec<i32> = attempts.iter().map(|a| a.attempt.latency_ms).collect();
    let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.attempt.error.as_deref()).collect();
    let excerpts: Vec<Option<&str>> =
        attempts.iter().map(|a| a.attempt.response_excerpt.as_deref()).collect();
    let statuses: Vec<&str> = attempts.iter().map(|a| a.status).collect();
    let next: Vec<Option<DateTime<Utc>>> = attempts.iter().map(|a| a.next_attempt_at).collect();
    sqlx::query!(
        r#"with given as (
               select * from unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::text[],
                                    $6::text[], $7::timestamptz[])
                   as given(delivery_id, status_code, latency_ms, error, excerpt, status,
                            next_attempt_at)
           ),
           tried as (
               insert into delivery_attempt (delivery_id, attempt, status_code, latency_ms, error,
                                             response_excerpt)
               select d.delivery_id, d.attempts + 1, g.status_code, g.latency_ms, g.error,
                      g.excerpt
               from delivery d join given g using (delivery_id)
               where d.delivery_id = any($1)
           ),
           moved as (
               update delivery d
               set status = g.status, attempts = d.attempts + 1,
                   last_status_code = g.status_code, last_error = g.error,
                   next_attempt_at = g.next_attempt_at,
                   delivered_at = case when g.status = 'delivered' then now()
                                       else d.delivered_at end,
                   updated_at = now()
               from given g
               where d.delivery_id = g.delivery_id and d.delivery_id = any($1)
               returning d.delivery_id, d.alert_id, d.agent_id, d.attempts, g.status,
                         g.status_code, g.error
           )
           insert into activity (alert_id, event_type, actor, details)
           select alert_id, 'delivery.' || status, 'worker',
                  json_build_object('delivery_id', delivery_id, 'agent_id', agent_id,
                                    'attempt', attempts, 'status_code', status_code,
                                    'error', error)
           from moved"#,
        &ids,
        &codes as &[Option<i32>],
        &latencies,
        &errors as &[Option<&str>],
        &excerpts as &[Option<&str>],
        &statuses as &[&str],
        &next as &[Option<DateTime<Utc>>],
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a delivery that will not be attempted (its agent was deactivated or deleted).
pub async fn cancel(
    db: impl PgExecutor<'_>,
    delivery_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update delivery set status = 'cancelled', last_error = $2, next_attempt_at = null,
                updated_at = now()
         where delivery_id = $1",
        delivery_id,
        reason
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A delivery as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub delivery_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub alert_id: Uuid,
    pub event: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Deliveries, newest first, optionally of one alert, one agent or in one status.
pub async fn list(
    db: impl PgExecutor<'_>,
    alert_id: Option<Uuid>,
    agent_id: Option<Uuid>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        r#"select d.delivery_id, d.agent_id, g.name as agent_name, d.alert_id, d.event, d.status,
                  d.attempts, d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at,
                  d.created_at
           from delivery d join agent g using (agent_id)
           where ($1::uuid is null or d.alert_id = $1)
             and ($2::uuid is null or d.agent_id = $2)
             and ($3::text is null or d.status = $3)
           order by d.created_at desc, d.delivery_id
           limit $4"#,
        alert_id,
        agent_id,
        status,
        limit,
    )
    .fetch_all(db)
    .await
}

/// A recorded attempt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRow {
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

pub async fn attempts(
    db: impl PgExecutor<'_>,
    delivery_id: Uuid,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as!(
        AttemptRow,
        "select attempt, attempted_at, status_code, latency_ms, error, response_excerpt
         from delivery_attempt where delivery_id = $1 order by attempt",
        delivery_id
    )
    .fetch_all(db)
    .await
}

/// Queues a delivery again, same `webhook-id`, unless it is already on its way. Returns
/// `None` when there is no such delivery, `Some(false)` when it is pending or retrying.
pub async fn redeliver(
    db: impl PgExecutor<'_>,
    delivery_id: Uuid,
    max_attempts: i32,
) -> Result<Option<bool>, sqlx::Error> {
    let row = sqlx::query!(
        r#"with current as (
               select delivery_id, status from delivery where delivery_id = $1 for update
           ),
           reopened as (
               update delivery d set status = 'pending', next_attempt_at = now(), updated_at = now()
               from current
               where d.delivery_id = current.delivery_id
                 and current.status in ('delivered', 'failed', 'cancelled')
               returning d.delivery_id
           ),
           queued as (
               insert into job (kind, payload, max_attempts)
               select $2, json_build_object('delivery_id', delivery_id), $3 from reopened
           )
           select (select count(*) from current) as "found!",
                  (select count(*) from reopened) as "reopened!""#,
        delivery_id,
        DELIVER_WEBHOOK,
        max_attempts,
    )
    .fetch_one(db)
    .await?;
    Ok((row.found > 0).then_some(row.reopened > 0))
}

/// The deliveries of many alerts, oldest first per alert.
pub async fn of_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        r#"select d.delivery_id, d.agent_id, g.name as agent_name, d.alert_id, d.event, d.status,
                  d.attempts, d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at,
                  d.created_at
           from delivery d join agent g using (agent_id)
           where d.alert_id = any($1)
           order by d.alert_id, d.created_at, d.delivery_id"#,
        alert_ids,
    )
    .fetch_all(db)
    .await
}
