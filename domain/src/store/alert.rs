//! The `alert` table: the ingest write (insert or deduplicate, with its job, in one statement)
//! and the reads the API and the pipeline need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, postgres::types::PgInterval};
use uuid::Uuid;

use crate::alert::{AlertStatus, EnrichmentStatus, IndicatorType, Malice, Severity, Source};
use crate::normalize::RuleRef;
use crate::targeting::AlertFacts;

/// A normalized alert ready to be stored, with the job and the actor that go with it.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub alert_id: Uuid,
    pub source: Source,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub occurred_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub raw_payload: String,
    pub fingerprint: [u8; 32],
    pub job_payload: serde_json::Value,
    /// Who sent it (an API key's name), for the activity log.
    pub actor: String,
}

/// What the ingest write did with one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub alert_id: Uuid,
    pub duplicate_count: i32,
    pub deduplicated: bool,
}

/// Stores each alert with its `enrich_alert` job, or, when an alert with the same fingerprint
/// was ingested within `dedup_window` (zero: never), counts a duplicate on that one instead.
/// One round trip and one transaction for the whole batch; results come back in input order.
///
/// The `ingest_alerts` function (`migrations/…_ingest_function.sql`) serializes identical
/// alerts with an advisory lock on the fingerprint's first 8 bytes (a collision only makes two
/// unrelated ingests wait for each other), held until commit. Alerts are written in lock-key
/// order so that concurrent batches take their locks in the same order.
pub async fn insert_or_deduplicate(
    db: impl PgExecutor<'_>,
    alerts: &[NewAlert],
    dedup_window: Duration,
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by_key(|&i| lock_key(&alerts[i].fingerprint));
    let sorted: Vec<&NewAlert> = order.iter().map(|&i| &alerts[i]).collect();
    let window = PgInterval { months: 0, days: 0, microseconds: dedup_window.as_micros() as i64 };
    let rows = sqlx::query!(
        r#"select batch_index as "batch_index!", alert_id as "alert_id!",
                  duplicate_count as "duplicate_count!", deduplicated as "deduplicated!"
           from ingest_alerts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           order by batch_index"#,
        &sorted.iter().map(|a| a.alert_id).collect::<Vec<_>>(),
        &sorted.iter().map(|a| a.fingerprint.to_vec()).collect::<Vec<_>>(),
        &sorted.iter().map(|a| lock_key(&a.fingerprint)).collect::<Vec<_>>(),
        &sorted.iter().map(|a| a.title.as_str()).collect::<Vec<_>>() as &[&str],
        &sorted.iter().map(|a| a.description.as_deref()).collect::<Vec<_>>() as &[Option<&str>],
        &sorted.iter().map(|a| a.severity.as_str()).collect::<Vec<_>>() as &[&str],
        &sorted.iter().map(|a| a.source.as_str()).collect::<Vec<_>>() as &[&str],
        &sorted.iter().map(|a| a.occurred_at).collect::<Vec<_>>(),
        &sorted.iter().map(|a| serde_json::json!(a.tags)).collect::<Vec<_>>(),
        &sorted.iter().map(|a| a.raw_payload.as_str()).collect::<Vec<_>>() as &[&str],
        &sorted.iter().map(|a| &a.job_payload).collect::<Vec<_>>() as &[&serde_json::Value],
        &sorted.iter().map(|a| a.actor.as_str()).collect::<Vec<_>>() as &[&str],
        window,
        crate::job::ENRICH_ALERT,
    )
    .fetch_all(db)
    .await?;
    let mut stored = vec![None; alerts.len()];
    for row in rows {
        let original = order[(row.batch_index - 1) as usize];
        stored[original] = Some(Stored {
            alert_id: row.alert_id,
            duplicate_count: row.duplicate_count,
            deduplicated: row.deduplicated,
        });
    }
    Ok(stored.into_iter().map(|s| s.expect("ingest_alerts returns one row per alert")).collect())
}

/// The advisory lock key of a fingerprint: its first 8 bytes.
fn lock_key(fingerprint: &[u8; 32]) -> i64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&fingerprint[..8]);
    i64::from_be_bytes(key)
}

/// An alert as stored, without its raw payload (often the largest part of the row, and read
/// only when asked for: [`raw_payload`], [`crate::store::graph::raw_payloads`]).
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub alert_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub status: AlertStatus,
    pub close_classification: Option<String>,
    pub duplicate_count: i32,
    pub ingested_at: DateTime<Utc>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub enrichment_status: EnrichmentStatus,
    pub malice: Malice,
    pub malice_override: Option<Malice>,
    pub detection_rule_id: Option<Uuid>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(db: impl PgExecutor<'_>, alert_id: Uuid) -> Result<Option<AlertRow>, sqlx::Error> {
    sqlx::query_as!(
        AlertRow,
        r#"select alert_id, title, description, severity as "severity: Severity", source_name,
                  occurred_at, tags, status as "status: AlertStatus", close_classification,
                  duplicate_count, ingested_at, enriched_at,
                  enrichment_status as "enrichment_status: EnrichmentStatus",
                  malice as "malice: Malice", malice_override as "malice_override: Malice",
                  detection_rule_id, acknowledged_at, triaged_at, closed_at, updated_at
           from alert where alert_id = $1"#,
        alert_id,
    )
    .fetch_optional(db)
    .await
}

/// The payload exactly as it was received.
pub async fn raw_payload(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select raw_payload::text as "raw!" from alert where alert_id = $1"#,
        alert_id
    )
    .fetch_optional(db)
    .await
}

/// Records the outcome of the enrichment stage in one statement: creates the detection rule the
/// alert names the first time its (source, rule id) is seen (an existing rule is never
/// overwritten: people may have edited it), links it, sets the alert's verdict to that of its
/// worst indicator, marks it with `status`, and logs the event. Returns what targeting rules
/// and trigger filters look at, as the statement left the alert, or `None` when the alert does
/// not exist.
pub async fn finish_enrichment(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    rule: Option<&RuleRef>,
    status: EnrichmentStatus,
    details: &serde_json::Value,
) -> Result<Option<AlertFacts>, sqlx::Error> {
    let row = sqlx::query!(
        r#"with target as (
               select alert_id, source_name from alert where alert_id = $1
           ),
           rule as (
               -- `do update` with an unchanged value, rather than `do nothing`, so that
               -- `returning` also yields the id of a rule that already exists.
               insert into detection_rule (name, source_name, source_rule_id, severity,
                                           mitre_tactics, mitre_techniques, mitre_subtechniques)
               select $2, target.source_name, $3, $4::text::severity, $5, $6, $7
               from target
               where $3::text is not null
               on conflict on constraint detection_rule_source_key
               do update set source_rule_id = excluded.source_rule_id
               returning detection_rule_id, name, source_rule_id, mitre_tactics
           ),
           marked as (
               update alert
               set detection_rule_id = coalesce((select detection_rule_id from rule),
                                                alert.detection_rule_id),
                   enrichment_status = $8::text::enrichment_status,
                   enriched_at = now(), updated_at = now(),
                   -- An analyst's override of an indicator counts instead of its
                   -- computed verdict.
                   malice = coalesce((select max(coalesce(i.malice_override, i.malice))
                                      from indicator i
                                      where i.indicator_id = any(array(
                                          select indicator_id from alert_indicator
                                          where alert_id = $1))), 'Pending')
               where alert_id = $1
               returning alert_id, source_name, severity, tags, title, malice, malice_override,
                         detection_rule_id
           ),
           logged as (
               insert into activity (alert_id, event_type, actor, details)
               select alert_id, 'alert.enriched', 'worker', $9 from marked
           )
           -- A rule this statement wrote is read from `rule`: the table shows the statement's
           -- snapshot, from before it.
           select m.source_name, m.severity as "severity!: Severity", m.tags, m.title,
                  coalesce(m.malice_override, m.malice) as "malice!: Malice",
                  coalesce(nr.name, r.name) as "rule_name?",
                  coalesce(nr.source_rule_id, r.source_rule_id) as "rule_id?",
                  coalesce(nr.mitre_tactics, r.mitre_tactics, '{}') as "mitre_tactics!",
                  -- `= any(array(…))` probes the indicators by key, never a scan of them.
                  array(select distinct i.type from indicator i
                        where i.indicator_id = any(array(
                            select ai.indicator_id from alert_indicator ai
                            where ai.alert_id = m.alert_id))) as "indicator_types!: Vec<IndicatorType>"
           from marked m
           left join rule nr on nr.detection_rule_id = m.detection_rule_id
           left join detection_rule r on r.detection_rule_id = m.detection_rule_id"#,
        alert_id,
        rule.map(|rule| rule.name.as_str()),
        rule.map(|rule| rule.source_rule_id.as_str()),
        rule.and_then(|rule| rule.severity).map(Severity::as_str),
        rule.map(|rule| rule.mitre_tactics.as_slice()).unwrap_or_default(),
        rule.map(|rule| rule.mitre_techniques.as_slice()).unwrap_or_default(),
        rule.map(|rule| rule.mitre_subtechniques.as_slice()).unwrap_or_default(),
        status.as_str(),
        details,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| AlertFacts {
        source_name: row.source_name,
        severity: row.severity,
        tags: row.tags,
        title: row.title,
        detection_rule: row.rule_name,
        detection_rule_id: row.rule_id,
        mitre_tactics: row.mitre_tactics,
        indicator_types: row.indicator_types,
        malice: row.malice,
    }))
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select count(*) as "n!" from alert"#).fetch_one(db).await
}

/// A triage change to apply. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Triage {
    pub status: Option<AlertStatus>,
    pub close_classification: Option<String>,
    pub severity: Option<Severity>,
    /// `Some(None)` clears an analyst's verdict.
    pub malice_override: Option<Option<Malice>>,
    pub tags: Option<Vec<String>>,
}

/// Applies a triage change under a row lock and returns the alert before and after, so the
/// caller can log what changed. Lifecycle timestamps: `acknowledged_at` when the alert first
/// leaves `Open`, `triaged_at` when it is first escalated or closed, `closed_at` while it is
/// closed; reopening clears the close classification.
pub async fn triage(
    db: &mut sqlx::PgConnection,
    alert_id: Uuid,
    change: &Triage,
) -> Result<Option<(AlertRow, AlertRow)>, sqlx::Error> {
    let Some(before) = sqlx::query_as!(
        AlertRow,
        r#"select alert_id, title, description, severity as "severity: Severity", source_name,
                  occurred_at, tags, status as "status: AlertStatus", close_classification,
                  duplicate_count, ingested_at, enriched_at,
                  enrichment_status as "enrichment_status: EnrichmentStatus",
                  malice as "malice: Malice", malice_override as "malice_override: Malice",
                  detection_rule_id, acknowledged_at, triaged_at, closed_at, updated_at
           from alert where alert_id = $1 for update"#,
        alert_id,
    )
    .fetch_optional(&mut *db)
    .await?
    else {
        return Ok(None);
    };
    let status = change.status.unwrap_or(before.status);
    let classification = match status {
        AlertStatus::Closed => {
            change.close_classification.clone().or_else(|| before.close_classification.clone())
        }
        _ => None,
    };
    let after = sqlx::query_as!(
        AlertRow,
        r#"update alert
           set status = $2::alert_status,
               close_classification = $3,
               severity = coalesce($4, severity),
               malice_override = case when $5 then $6 else malice_override end,
               tags = coalesce($7, tags),
               acknowledged_at = case when $2::alert_status <> 'Open' then coalesce(acknowledged_at, now())
                                      else acknowledged_at end,
               triaged_at = case when $2::alert_status in ('Escalated', 'Closed')
                                 then coalesce(triaged_at, now()) else triaged_at end,
               closed_at = case when $2::alert_status = 'Closed' then coalesce(closed_at, now()) end,
               updated_at = now()
           where alert_id = $1
           returning alert_id, title, description, severity as "severity: Severity",
                     source_name, occurred_at, tags, status as "status: AlertStatus",
                     close_classification, duplicate_count,
                     ingested_at, enriched_at,
                     enrichment_status as "enrichment_status: EnrichmentStatus",
                     malice as "malice: Malice", malice_override as "malice_override: Malice",
                     detection_rule_id, acknowledged_at, triaged_at, closed_at, updated_at"#,
        alert_id,
        status as AlertStatus,
        classification,
        change.severity as Option<Severity>,
        change.malice_override.is_some(),
        change.malice_override.flatten() as Option<Malice>,
        change.tags.as_deref(),
    )
    .fetch_one(&mut *db)
    .await?;
    Ok(Some((before, after)))
}

/// Sets or clears an analyst's verdict on an indicator and recomputes the verdict of every
/// alert it is linked to (their worst indicator, overrides counting), logging the change on
/// each. Returns the ids of those alerts, or `None` when there is no such indicator.
pub async fn override_indicator_malice(
    db: impl PgExecutor<'_>,
    indicator_id: Uuid,
    malice: Option<Malice>,
    actor: &str,
) -> Result<Option<Vec<Uuid>>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"with judged as (
               update indicator set malice_override = $2 where indicator_id = $1
               returning indicator_id, type::text as kind, value, malice
           ),
           linked as (
               select ai.alert_id from alert_indicator ai join judged using (indicator_id)
           ),
           recomputed as (
               update alert a
               set malice = coalesce((
                       select max(case when i.indicator_id = $1 then coalesce($2, i.malice)
                                       else coalesce(i.malice_override, i.malice) end)
                       from alert_indicator ai join indicator i using (indicator_id)
                       where ai.alert_id = a.alert_id), 'Pending'),
                   updated_at = now()
               from linked where a.alert_id = linked.alert_id
               returning a.alert_id
           ),
           logged as (
               insert into activity (alert_id, event_type, actor, details)
               select r.alert_id, 'indicator.malice_overridden', $3,
                      json_build_object('indicator_id', j.indicator_id, 'type', j.kind,
                                        'value', j.value, 'malice_override', $2::text)
               from recomputed r, judged j
           )
           select (select count(*) from judged) as "found!",
                  coalesce((select array_agg(alert_id) from recomputed), '{}') as "alerts!""#,
        indicator_id,
        malice as Option<Malice>,
        actor,
    )
    .fetch_one(db)
    .await?;
    Ok((rows.found > 0).then_some(rows.alerts))
}
