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
pub mod detection_rule;
pub mod dispatch;
pub mod enrich;
pub mod indicator;
pub mod ingest;
pub mod job;
pub mod mapping;
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
    MIGRATOR.run(db).await?;
    store::mapping::seed_system(db, normalize::SYSTEM_MAPPINGS).await?;
    provider::registry::seed_builtin(db).await?;
    Ok(())
}
