//! All SQL, one file per aggregate. Functions take the executor first, so the caller decides
//! what shares a transaction.

pub mod activity;
pub mod agent;
pub mod alert;
pub mod api_key;
pub mod call_limit;
pub mod delivery;
pub mod document;
pub mod enrichment;
pub mod finding;
pub mod graph;
pub mod indicator;
pub mod job;
pub mod mapping;
pub mod metrics;
pub mod provider;
pub mod rule;

/// The database's current time (the transaction's start), which stored rows are stamped with.
pub async fn now(
    db: impl sqlx::PgExecutor<'_>,
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    sqlx::query_scalar!(r#"select now() as "now!""#).fetch_one(db).await
}
