//! The `indicator` and `alert_indicator` tables: one global row per (type, value), linked to
//! every alert it appears in.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::{IndicatorType, Malice};
use crate::indicator::Indicator;

/// Upserts `indicators` (bumping `last_seen` on those already known) and links them to the
/// alert, in one statement, returning each indicator's id. Rows are written in (type, value)
/// order, so two transactions touching overlapping indicators lock them in the same order and
/// cannot deadlock each other.
pub async fn upsert_and_link(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    indicators: &[Indicator],
) -> Result<Vec<(Uuid, Indicator)>, sqlx::Error> {
    if indicators.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted: Vec<&Indicator> = indicators.iter().collect();
    sorted.sort();
    sorted.dedup();
    let kinds: Vec<&str> = sorted.iter().map(|i| i.kind.as_str()).collect();
    let values: Vec<&str> = sorted.iter().map(|i| i.value.as_str()).collect();
    let rows = sqlx::query!(
        r#"with upserted as (
               insert into indicator (type, value)
               select kind::indicator_type, value
               from unnest($2::text[], $3::text[]) with ordinality as given(kind, value, position)
               order by position
               on conflict on constraint indicator_type_value_key
               do update set last_seen = greatest(indicator.last_seen, excluded.last_seen)
               returning indicator_id, type, value
           ),
           linked as (
               insert into alert_indicator (alert_id, indicator_id)
               select $1, indicator_id from upserted
               -- An alert deleted after ingest is reported by `finish_enrichment`, not as a
               -- foreign-key error here.
               where exists (select 1 from alert where alert_id = $1)
               on conflict on constraint alert_indicator_pkey do nothing
           )
           select indicator_id, type as "kind: IndicatorType", value from upserted"#,
        alert_id,
        &kinds as &[&str],
        &values as &[&str],
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.indicator_id, Indicator { kind: row.kind, value: row.value }))
        .collect())
}

/// Upserts one indicator that no alert brought (an on-demand lookup), returning its id.
pub async fn upsert(db: impl PgExecutor<'_>, indicator: &Indicator) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into indicator (type, value) values ($1::text::indicator_type, $2)
           on conflict on constraint indicator_type_value_key
           do update set last_seen = greatest(indicator.last_seen, excluded.last_seen)
           returning indicator_id"#,
        indicator.kind.as_str(),
        indicator.value,
    )
    .fetch_one(db)
    .await
}

/// An indicator as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndicatorRow {
    pub indicator_id: Uuid,
    pub kind: IndicatorType,
    pub value: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub malice: Malice,
    pub malice_override: Option<Malice>,
}

/// The indicators linked to an alert, ordered by (type, value).
pub async fn for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Vec<IndicatorRow>, sqlx::Error> {
    sqlx::query_as!(
        IndicatorRow,
        r#"select i.indicator_id, i.type as "kind: IndicatorType", i.value, i.first_seen,
                  i.last_seen, i.malice as "malice: Malice",
                  i.malice_override as "malice_override: Malice"
           from alert_indicator ai join indicator i using (indicator_id)
           where ai.alert_id = $1
           order by i.type, i.value"#,
        alert_id,
    )
    .fetch_all(db)
    .await
}
