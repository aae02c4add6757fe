//! Reads for the GraphQL graph: searches with keyset pagination, and batch loads keyed by id
//! (one statement for any number of parents) for the DataLoaders, so the number of statements
//! a query costs depends on its depth, never on its row counts.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::alert::{AlertStatus, IndicatorType, Malice, Severity};
use crate::store::alert::AlertRow;
use crate::store::indicator::IndicatorRow;

const ALERT_COLUMNS: &str = "a.alert_id, a.title, a.description, a.severity, a.source_name, \
     a.occurred_at, a.tags, a.status, a.close_classification, a.duplicate_count, a.ingested_at, \
     a.enriched_at, a.enrichment_status, a.malice, a.malice_override, a.detection_rule_id, \
     a.acknowledged_at, a.triaged_at, a.closed_at, a.updated_at";

/// What alerts may be filtered on. Empty lists and `None` impose nothing.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub statuses: Vec<AlertStatus>,
    pub severities: Vec<Severity>,
    pub min_severity: Option<Severity>,
    pub sources: Vec<String>,
    /// The effective verdict: the analyst's override, else the computed one.
    pub malice: Vec<Malice>,
    /// Alerts carrying every one of these tags.
    pub tags: Vec<String>,
    pub occurred_after: Option<DateTime<Utc>>,
    pub occurred_before: Option<DateTime<Utc>>,
    pub ingested_after: Option<DateTime<Utc>>,
    pub ingested_before: Option<DateTime<Utc>>,
    pub detection_rule_id: Option<Uuid>,
    pub indicator_id: Option<Uuid>,
    /// Case-insensitive substring of the title or description.
    pub text: Option<String>,
}

/// How alerts are ordered; every order ends with the id, so keyset cursors are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertOrder {
    /// Most recently ingested first (alert ids are UUIDv7, ordered by ingest time).
    #[default]
    Newest,
    Oldest,
    /// Most severe first, then newest.
    Severity,
    /// Most recently occurred first.
    Occurred,
}

/// Where a page starts: after the alert with this id (its sort key is read from the table).
pub async fn search_alerts(
    db: impl PgExecutor<'_>,
    filter: &AlertFilter,
    order: AlertOrder,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(format!("select {ALERT_COLUMNS} from alert a"));
    push_filter(&mut query, filter);
    if let Some(after) = after {
        query.push(" and ");
        match order {
            AlertOrder::Newest => query.push("a.alert_id < ").push_bind(after),
            AlertOrder::Oldest => query.push("a.alert_id > ").push_bind(after),
            AlertOrder::Severity => query
                .push("(a.severity, a.alert_id) < (select severity, alert_id from alert where alert_id = ")
                .push_bind(after)
                .push(")"),
            AlertOrder::Occurred => query
                .push("(a.occurred_at, a.alert_id) < (select occurred_at, alert_id from alert where alert_id = ")
                .push_bind(after)
                .push(")"),
        };
    }
    query.push(match order {
        AlertOrder::Newest => " order by a.alert_id desc",
        AlertOrder::Oldest => " order by a.alert_id asc",
        AlertOrder::Severity => " order by a.severity desc, a.alert_id desc",
        AlertOrder::Occurred => " order by a.occurred_at desc, a.alert_id desc",
    });
    query.push(" limit ").push_bind(limit);
    query.build().try_map(|row| alert_row(&row, 0)).fetch_all(db).await
}

/// An alert read by position, [`ALERT_COLUMNS`] in order from column `first`, each value decoded as the type
/// `store::alert::get` reads the same column as, which `query_as!` checks against the schema at
/// build time; `tests/it/graphql.rs` checks both read the same row. On a page of alerts this
/// takes about half the work of the derived `FromRow`, which finds each column by name and
/// checks each value's type again.
fn alert_row(row: &PgRow, first: usize) -> Result<AlertRow, sqlx::Error> {
    Ok(AlertRow {
        alert_id: row.try_get_unchecked(first)?,
        title: row.try_get_unchecked(first + 1)?,
        description: row.try_get_unchecked(first + 2)?,
        severity: row.try_get_unchecked(first + 3)?,
        source_name: row.try_get_unchecked(first + 4)?,
        occurred_at: row.try_get_unchecked(first + 5)?,
        tags: row.try_get_unchecked(first + 6)?,
        status: row.try_get_unchecked(first + 7)?,
        close_classification: row.try_get_unchecked(first + 8)?,
        duplicate_count: row.try_get_unchecked(first + 9)?,
        ingested_at: row.try_get_unchecked(first + 10)?,
        enriched_at: row.try_get_unchecked(first + 11)?,
        enrichment_status: row.try_get_unchecked(first + 12)?,
        malice: row.try_get_unchecked(first + 13)?,
        malice_override: row.try_get_unchecked(first + 14)?,
        detection_rule_id: row.try_get_unchecked(first + 15)?,
        acknowledged_at: row.try_get_unchecked(first + 16)?,
        triaged_at: row.try_get_unchecked(first + 17)?,
        closed_at: row.try_get_unchecked(first + 18)?,
        updated_at: row.try_get_unchecked(first + 19)?,
    })
}

/// How many alerts match.
pub async fn count_alerts(
    db: impl PgExecutor<'_>,
    filter: &AlertFilter,
) -> Result<i64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("select count(*) from alert a");
    push_filter(&mut query, filter);
    query.build_query_scalar::<i64>().fetch_one(db).await
}

fn push_filter(query: &mut QueryBuilder<Postgres>, filter: &AlertFilter) {
    query.push(" where true");
    if !filter.statuses.is_empty() {
        query.push(" and a.status = any(").push_bind(filter.statuses.clone()).push(")");
    }
    if !filter.severities.is_empty() {
        query.push(" and a.severity = any(").push_bind(filter.severities.clone()).push(")");
    }
    if let Some(min) = filter.min_severity {
        query.push(" and a.severity >= ").push_bind(min);
    }
    if !filter.sources.is_empty() {
        query.push(" and a.source_name = any(").push_bind(filter.sources.clone()).push(")");
    }
    if !filter.malice.is_empty() {
        query
            .push(" and coalesce(a.malice_override, a.malice) = any(")
            .push_bind(filter.malice.clone())
            .push(")");
    }
    if !filter.tags.is_empty() {
        query.push(" and a.tags @> ").push_bind(filter.tags.clone());
    }
    for (column, op, value) in [
        ("occurred_at", ">=", filter.occurred_after),
        ("occurred_at", "<", filter.occurred_before),
        ("ingested_at", ">=", filter.ingested_after),
        ("ingested_at", "<", filter.ingested_before),
    ] {
        if let Some(value) = value {
            query.push(format!(" and a.{column} {op} ")).push_bind(value);
        }
    }
    if let Some(rule) = filter.detection_rule_id {
        query.push(" and a.detection_rule_id = ").push_bind(rule);
    }
    if let Some(indicator) = filter.indicator_id {
        query
            .push(" and exists (select 1 from alert_indicator ai where ai.alert_id = a.alert_id and ai.indicator_id = ")
            .push_bind(indicator)
            .push(")");
    }
    if let Some(text) = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = contains_pattern(text);
        query
            .push(" and (a.title ilike ")
            .push_bind(pattern.clone())
            .push(" or a.description ilike ")
            .push_bind(pattern)
            .push(")");
    }
}

/// Alerts by id, for loaders.
pub async fn alerts_by_id(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<AlertRow>, sqlx::Error> {
    QueryBuilder::<Postgres>::new(format!(
        "select {ALERT_COLUMNS} from alert a where a.alert_id = any("
    ))
    .push_bind(ids.to_vec())
    .push(")")
    .build()
    .try_map(|row| alert_row(&row, 0))
    .fetch_all(db)
    .await
}

/// Alerts' raw payloads, as received (the text of the `json` column), for loaders.
pub async fn raw_payloads(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select alert_id, raw_payload::text as "raw!" from alert where alert_id = any($1)"#,
        ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.alert_id, r.raw)).collect())
}

/// What indicators may be filtered on.
#[derive(Debug, Clone, Default)]
pub struct IndicatorFilter {
    pub types: Vec<IndicatorType>,
    pub malice: Vec<Malice>,
    pub seen_after: Option<DateTime<Utc>>,
    pub seen_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the value.
    pub value_contains: Option<String>,
}

/// Indicators, most recently seen first (then by id), after the given one.
pub async fn search_indicators(
    db: impl PgExecutor<'_>,
    filter: &IndicatorFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<IndicatorRow>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "select i.indicator_id, i.type as kind, i.value, i.first_seen, i.last_seen, i.malice, \
         i.malice_override, i.results_version from indicator i",
    );
    push_indicator_filter(&mut query, filter);
    if let Some(after) = after {
        query
            .push(" and (i.last_seen, i.indicator_id) < (select last_seen, indicator_id from indicator where indicator_id = ")
            .push_bind(after)
            .push(")");
    }
    query.push(" order by i.last_seen desc, i.indicator_id desc limit ").push_bind(limit);
    query.build_query_as::<IndicatorRow>().fetch_all(db).await
}

pub async fn count_indicators(
    db: impl PgExecutor<'_>,
    filter: &IndicatorFilter,
) -> Result<i64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("select count(*) from indicator i");
    push_indicator_filter(&mut query, filter);
    query.build_query_scalar::<i64>().fetch_one(db).await
}

fn push_indicator_filter(query: &mut QueryBuilder<Postgres>, filter: &IndicatorFilter) {
    query.push(" where true");
    if !filter.types.is_empty() {
        query.push(" and i.type = any(").push_bind(filter.types.clone()).push(")");
    }
    if !filter.malice.is_empty() {
        query
            .push(" and coalesce(i.malice_override, i.malice) = any(")
            .push_bind(filter.malice.clone())
            .push(")");
    }
    if let Some(after) = filter.seen_after {
        query.push(" and i.last_seen >= ").push_bind(after);
    }
    if let Some(before) = filter.seen_before {
        query.push(" and i.first_seen < ").push_bind(before);
    }
    if let Some(text) = filter.value_contains.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = contains_pattern(text);
        query.push(" and i.value ilike ").push_bind(pattern);
    }
}

/// Indicators by id.
pub async fn indicators_by_id(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<IndicatorRow>, sqlx::Error> {
    sqlx::query_as!(
        IndicatorRow,
        r#"select indicator_id, type as "kind: IndicatorType", value, first_seen, last_seen,
                  malice as "malice: Malice", malice_override as "malice_override: Malice",
                  results_version
           from indicator where indicator_id = any($1)"#,
        ids,
    )
    .fetch_all(db)
    .await
}

/// One indicator by (type, value).
pub async fn indicator_by_value(
    db: impl PgExecutor<'_>,
    kind: IndicatorType,
    value: &str,
) -> Result<Option<IndicatorRow>, sqlx::Error> {
    sqlx::query_as!(
        IndicatorRow,
        r#"select indicator_id, type as "kind: IndicatorType", value, first_seen, last_seen,
                  malice as "malice: Malice", malice_override as "malice_override: Malice",
                  results_version
           from indicator where type = $1 and value = $2"#,
        kind as IndicatorType,
        value,
    )
    .fetch_optional(db)
    .await
}

/// The indicators of many alerts: (alert id, indicator), each alert's by (type, value).
pub async fn indicators_of_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
) -> Result<Vec<(Uuid, IndicatorRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select ai.alert_id, i.indicator_id, i.type as "kind: IndicatorType", i.value,
                  i.first_seen, i.last_seen, i.malice as "malice: Malice",
                  i.malice_override as "malice_override: Malice", i.results_version
           from alert_indicator ai join indicator i using (indicator_id)
           where ai.alert_id = any($1)
           order by ai.alert_id, i.type, i.value"#,
        alert_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = IndicatorRow {
                indicator_id: r.indicator_id,
                kind: r.kind,
                value: r.value,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                malice: r.malice,
                malice_override: r.malice_override,
                results_version: r.results_version,
            };
            (r.alert_id, row)
        })
        .collect())
}

/// One provider's stored result, as the graph lists it: without the raw answers, which are
/// read only when asked for ([`raw_results_of_indicators`]).
#[derive(Debug, Clone)]
pub struct ResultNode {
    pub indicator_id: Uuid,
    pub provider: String,
    pub success: bool,
    pub extracted: serde_json::Value,
    pub error: Option<String>,
    pub malice: Malice,
    pub enriched_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The results of several indicators, by indicator then provider name, for loaders.
pub async fn results_of_indicators(
    db: impl PgExecutor<'_>,
    indicator_ids: &[Uuid],
) -> Result<Vec<ResultNode>, sqlx::Error> {
    sqlx::query_as!(
        ResultNode,
        r#"select r.indicator_id, p.name as provider, r.success, r.extracted, r.error,
                  r.malice as "malice: Malice", r.enriched_at, r.expires_at
           from enrichment_result r
           join enrichment_provider p using (enrichment_provider_id)
           where r.indicator_id = any($1)
           order by r.indicator_id, p.name"#,
        indicator_ids,
    )
    .fetch_all(db)
    .await
}

/// The providers' whole answers for indicators, by indicator and provider name, for loaders.
pub async fn raw_results_of_indicators(
    db: impl PgExecutor<'_>,
    indicator_ids: &[Uuid],
) -> Result<Vec<(Uuid, String, Option<serde_json::Value>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select r.indicator_id, p.name as provider, r.raw
           from enrichment_result r
           join enrichment_provider p using (enrichment_provider_id)
           where r.indicator_id = any($1)"#,
        indicator_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.indicator_id, r.provider, r.raw)).collect())
}

/// How many alerts each indicator is linked to.
pub async fn alert_counts(
    db: impl PgExecutor<'_>,
    indicator_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select indicator_id, count(*) as "count!" from alert_indicator
           where indicator_id = any($1) group by indicator_id"#,
        indicator_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.indicator_id, r.count)).collect())
}

/// The `limit` newest alerts of each indicator, in one statement: (indicator id, alert). With
/// `counted`, each row also carries how many alerts the indicator has in all (an indicator
/// without alerts has no rows, so its count is 0).
pub async fn newest_alerts_of_indicators(
    db: impl PgExecutor<'_>,
    indicator_ids: &[Uuid],
    limit: i64,
    counted: bool,
) -> Result<Vec<(Uuid, Option<i64>, AlertRow)>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("select given.indicator_id as parent_id, ");
    query.push(if counted { "counted.total" } else { "null::bigint as total" });
    query.push(format!(", {ALERT_COLUMNS} from unnest("));
    query.push_bind(indicator_ids.to_vec()).push("::uuid[]) as given(indicator_id)");
    if counted {
        query.push(
            " cross join lateral (select count(*) as total from alert_indicator c
                                  where c.indicator_id = given.indicator_id) as counted",
        );
    }
    query
        .push(
            " cross join lateral (
                 select ai.alert_id from alert_indicator ai
                 where ai.indicator_id = given.indicator_id
                 order by ai.alert_id desc limit ",
        )
        .push_bind(limit)
        .push(") as linked join alert a on a.alert_id = linked.alert_id order by given.indicator_id, a.alert_id desc")
        .build()
        .try_map(|row| Ok((row.try_get(0)?, row.try_get(1)?, alert_row(&row, 2)?)))
        .fetch_all(db)
        .await
}

/// For each alert, the other alerts sharing at least one indicator with it, newest first, with
/// the shared indicators' ids: (alert id, related alert id, shared indicator ids).
pub async fn related_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, Vec<Uuid>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select given.alert_id as "alert_id!", related.alert_id as "related_id!",
                  related.shared as "shared!"
           from unnest($1::uuid[]) as given(alert_id)
           cross join lateral (
               select other.alert_id, array_agg(other.indicator_id order by other.indicator_id) as shared
               from alert_indicator mine
               join alert_indicator other
                 on other.indicator_id = mine.indicator_id and other.alert_id <> mine.alert_id
               where mine.alert_id = given.alert_id
               group by other.alert_id
               order by other.alert_id desc
               limit $2
           ) as related
           order by given.alert_id, related.alert_id desc"#,
        alert_ids,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.alert_id, r.related_id, r.shared)).collect())
}

/// Rows for one alert's activity, findings, documents and deliveries are read per alert
/// through these batch variants.
pub async fn activity_of_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
) -> Result<Vec<(Uuid, crate::store::activity::ActivityRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select alert_id as "alert_id!", activity_id, event_type, actor, details, created_at
           from activity where alert_id = any($1) order by alert_id, activity_id"#,
        alert_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = crate::store::activity::ActivityRow {
                activity_id: r.activity_id,
                event_type: r.event_type,
                actor: r.actor,
                details: r.details,
                created_at: r.created_at,
            };
            (r.alert_id, row)
        })
        .collect())
}

pub async fn findings_of_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
) -> Result<Vec<crate::store::finding::FindingRow>, sqlx::Error> {
    sqlx::query_as!(
        crate::store::finding::FindingRow,
        "select finding_id, alert_id, agent_name, summary, confidence, recommended_action, evidence,
                created_at
         from finding where alert_id = any($1) order by alert_id, created_at, finding_id",
        alert_ids,
    )
    .fetch_all(db)
    .await
}

pub async fn documents_of_alerts(
    db: impl PgExecutor<'_>,
    alert_ids: &[Uuid],
) -> Result<Vec<(Uuid, crate::store::document::DocumentRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select a.alert_id, d.context_document_id, d.title,
                  d.document_type as "document_type: crate::context::DocumentType", d.content,
                  d.description, d.tags, d.is_global, d.targeting_rules, d.is_active, d.version,
                  d.created_by, d.created_at, d.updated_at
           from alert_context_document a join context_document d using (context_document_id)
           where a.alert_id = any($1) order by a.alert_id, a.attached_at, d.title"#,
        alert_ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = crate::store::document::DocumentRow {
                context_document_id: r.context_document_id,
                title: r.title,
                document_type: r.document_type,
                content: r.content,
                description: r.description,
                tags: r.tags,
                is_global: r.is_global,
                targeting_rules: r.targeting_rules,
                is_active: r.is_active,
                version: r.version,
                created_by: r.created_by,
                created_at: r.created_at,
                updated_at: r.updated_at,
            };
            (r.alert_id, row)
        })
        .collect())
}

pub async fn rules_by_id(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<crate::store::rule::RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        crate::store::rule::RuleRow,
        r#"select detection_rule_id, name, source_name, source_rule_id,
                  severity as "severity: Severity", mitre_tactics, mitre_techniques,
                  mitre_subtechniques, data_sources, documentation, is_active, created_at,
                  updated_at
           from detection_rule where detection_rule_id = any($1)"#,
        ids,
    )
    .fetch_all(db)
    .await
}

/// An `ilike` pattern matching `text` anywhere, its wildcards taken literally.
fn contains_pattern(text: &str) -> String {
    format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}
