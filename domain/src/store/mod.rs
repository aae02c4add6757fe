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

/// How long a pooled connection may sit idle before it is checked with a round trip when taken.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Pool options for `size` connections, all opened at start and kept. A connection that was idle
/// for [`PING_AFTER_IDLE`] is pinged before use (one that died with its server or a firewall is
/// replaced); one taken back at once is not. sqlx's default pings on every acquire, which is a
/// round trip to the database before each statement a busy server runs.
pub fn pool_options(size: u32) -> sqlx::postgres::PgPoolOptions {
    use futures::FutureExt;
    use sqlx::Connection;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .min_connections(size)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            }
            .boxed()
        })
}
