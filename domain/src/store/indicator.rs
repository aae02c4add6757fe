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
    let mut linked = upsert_and_link_many(db, &[(alert_id, indicators)]).await?;
    Ok(linked.pop().unwrap_or_default())
}

/// [`upsert_and_link`] for several alerts in one statement: each distinct indicator is upserted
/// once, in (type, value) order, and linked to every alert that has it. Returns each alert's
/// indicators with their ids, in the order given, without duplicates.
pub async fn upsert_and_link_many(
    db: impl PgExecutor<'_>,
    alerts: &[(Uuid, &[Indicator])],
) -> Result<Vec<Vec<(Uuid, Indicator)>>, sqlx::Error> {
    let mut distinct: Vec<&Indicator> = alerts.iter().flat_map(|(_, given)| given.iter()).collect();
    if distinct.is_empty() {
        return Ok(vec![Vec::new(); alerts.len()]);
    }
    distinct.sort();
    distinct.dedup();
    let kinds: Vec<&str> = distinct.iter().map(|i| i.kind.as_str()).collect();
    let values: Vec<&str> = distinct.iter().map(|i| i.value.as_str()).collect();
    let position: std::collections::HashMap<&Indicator, i32> =
        distinct.iter().enumerate().map(|(at, indicator)| (*indicator, at as i32 + 1)).collect();
    let (mut link_alerts, mut link_positions) = (Vec::new(), Vec::new());
    for (alert_id, given) in alerts {
        for indicator in given.iter() {
            link_alerts.push(*alert_id);
            link_positions.push(position[indicator]);
        }
    }
    let rows = sqlx::query!(
        r#"with given as (
               select * from unnest($1::text[], $2::text[]) with ordinality
                   as given(kind, value, position)
           ),
           upserted as (
               insert into indicator (type, value)
               select kind::indicator_type, value from given
               order by position
               on conflict on constraint indicator_type_value_key
               do update set last_seen = greatest(indicator.last_seen, excluded.last_seen)
               returning indicator_id, type, value
           ),
           numbered as (
               select u.indicator_id, g.position
               from upserted u join given g on g.kind = u.type::text and g.value = u.value
           ),
           linked as (
               insert into alert_indicator (alert_id, indicator_id)
               select distinct l.alert_id, n.indicator_id
               from unnest($3::uuid[], $4::int[]) as l(alert_id, position)
               join numbered n on n.position = l.position
               -- An alert deleted after ingest is reported by `finish_enrichment`, not as a
               -- foreign-key error here.
               where exists (select 1 from alert a where a.alert_id = l.alert_id)
               on conflict on constraint alert_indicator_pkey do nothing
           )
           select n.indicator_id, n.position as "position!" from numbered n"#,
        &kinds as &[&str],
        &values as &[&str],
        &link_alerts,
        &link_positions,
    )
    .fetch_all(db)
    .await?;
    let mut ids = vec![Uuid::nil(); distinct.len()];
    for row in rows {
        ids[row.position as usize - 1] = row.indicator_id;
    }
    Ok(alerts
        .iter()
        .map(|(_, given)| {
            let mut mine: Vec<&Indicator> = given.iter().collect();
            mine.sort();
            mine.dedup();
            mine.into_iter()
                .map(|indicator| (ids[position[indicator] as usize - 1], indicator.clone()))
                .collect()
        })
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
    /// Goes up whenever its provider results change (see `enrichment::save`).
    pub results_version: i64,
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
                  i.malice_override as "malice_override: Malice", i.results_version
           from alert_indicator ai join indicator i using (indicator_id)
           where ai.alert_id = $1
           order by i.type, i.value"#,
        alert_id,
    )
    .fetch_all(db)
    .await
}
