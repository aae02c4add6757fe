//! Operational metrics over a time window, for dashboards and agents, in one statement.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Alert counts and timings for alerts ingested in `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertMetrics {
    pub total: i64,
    /// (label, count) pairs, most frequent first.
    pub by_severity: Vec<(String, i64)>,
    pub by_status: Vec<(String, i64)>,
    pub by_source: Vec<(String, i64)>,
    pub by_malice: Vec<(String, i64)>,
    /// Mean seconds from ingest to first acknowledgement (leaving `Open`).
    pub mean_time_to_acknowledge: Option<f64>,
    /// Mean seconds from ingest to closing.
    pub mean_time_to_close: Option<f64>,
    /// Mean seconds from ingest to the end of enrichment.
    pub mean_time_to_enrich: Option<f64>,
    /// Closed alerts classified as a false positive, over closed alerts.
    pub false_positive_rate: Option<f64>,
    /// Alerts whose enrichment ran and got at least one result, over all alerts.
    pub enrichment_coverage: Option<f64>,
}

pub async fn alerts(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<AlertMetrics, sqlx::Error> {
    let row = sqlx::query!(
        r#"with window_alerts as (
               select * from alert where ingested_at >= $1 and ingested_at < $2
           )
           select
               (select count(*) from window_alerts) as "total!",
               (select coalesce(json_agg(json_build_array(severity, n) order by n desc, severity), '[]')
                from (select severity::text, count(*) as n from window_alerts group by 1) s) as "by_severity!",
               (select coalesce(json_agg(json_build_array(status, n) order by n desc, status), '[]')
                from (select status::text, count(*) as n from window_alerts group by 1) s) as "by_status!",
               (select coalesce(json_agg(json_build_array(source_name, n) order by n desc, source_name), '[]')
                from (select source_name, count(*) as n from window_alerts group by 1) s) as "by_source!",
               (select coalesce(json_agg(json_build_array(malice, n) order by n desc, malice), '[]')
                from (select coalesce(malice_override, malice)::text as malice, count(*) as n
                      from window_alerts group by 1) s) as "by_malice!",
               (select avg(extract(epoch from acknowledged_at - ingested_at))::float8
                from window_alerts where acknowledged_at is not null) as mtta,
               (select avg(extract(epoch from closed_at - ingested_at))::float8
                from window_alerts where closed_at is not null) as mttc,
               (select avg(extract(epoch from enriched_at - ingested_at))::float8
                from window_alerts where enriched_at is not null) as mtte,
               (select (count(*) filter (where close_classification like 'false_positive%'))::float8
                       / nullif(count(*), 0)
                from window_alerts where status = 'Closed') as fp_rate,
               (select (count(*) filter (where enrichment_status = 'Enriched' and exists (
                           select 1 from alert_indicator ai join enrichment_result r using (indicator_id)
                           where ai.alert_id = w.alert_id and r.success)))::float8
                       / nullif(count(*), 0)
                from window_alerts w) as coverage"#,
        from,
        to,
    )
    .fetch_one(db)
    .await?;
    let pairs = |value: serde_json::Value| -> Vec<(String, i64)> {
        serde_json::from_value::<Vec<(String, i64)>>(value).unwrap_or_default()
    };
    Ok(AlertMetrics {
        total: row.total,
        by_severity: pairs(row.by_severity),
        by_status: pairs(row.by_status),
        by_source: pairs(row.by_source),
        by_malice: pairs(row.by_malice),
        mean_time_to_acknowledge: row.mtta,
        mean_time_to_close: row.mttc,
        mean_time_to_enrich: row.mtte,
        false_positive_rate: row.fp_rate,
        enrichment_coverage: row.coverage,
    })
}
