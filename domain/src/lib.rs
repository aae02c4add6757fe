//! alertgraph's domain: the alert pipeline stages and every SQL statement the product runs.
//!
//! The modules follow the pipeline: [`ingest`] accepts a raw SIEM payload (via [`normalize`] and
//! [`indicator`]), [`enrich`] is the first stage the worker runs, and [`store`] holds the SQL,
//! one file per aggregate. This crate knows nothing of HTTP, GraphQL or MCP: the `server` and
//! `worker` crates translate their inputs into calls here.

pub mod agent;
pub mod alert;
pub mod api_key;
mod batch;
pub mod context;
pub mod demo;
pub mod detection_rule;
pub mod dispatch;
pub mod enrich;
pub mod indicator;
pub mod ingest;
pub mod job;
pub mod mapping;
pub mod metrics;
pub mod normalize;
pub mod notify;
pub mod outbound;
pub mod provider;
pub mod secret;
pub mod store;
pub mod targeting;
pub mod triage;

/// The schema migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Brings a database up to date: applies migrations, then seeds the built-in rows that live in
/// code (system indicator mappings, built-in providers), so that upgrades add and update
/// built-ins without a migration.
pub async fn migrate(db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    MIGRATOR.run(db).await?;
    // Processes started together (`up` beside `migrate`, replicas) seed one at a time, so each
    // finds the rows the one before it wrote instead of racing it to insert them. The lock is
    // held on a connection of its own, which a pool of one could not spare.
    let mut lock = sqlx::PgConnection::connect_with(&db.connect_options()).await?;
    sqlx::query("select pg_advisory_lock($1)").bind(SEED_LOCK).execute(&mut lock).await?;
    let seeded = seed(db).await;
    let closed = lock.close().await;
    seeded?;
    closed
}

/// The advisory lock key seeding holds ("alertgph" in ASCII).
const SEED_LOCK: i64 = 0x616c_6572_7467_7068;

async fn seed(db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    store::mapping::seed_system(db, normalize::SYSTEM_MAPPINGS).await?;
    provider::registry::seed_builtin(db).await
}
