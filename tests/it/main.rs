//! End-to-end tests: the real router served on 127.0.0.1, real HTTP, a real worker, and a fresh
//! PostgreSQL database per test (`#[sqlx::test]`).

mod cli;
mod dispatch;
mod enrichment;
mod graphql;
mod graphql_admin;
mod helpers;
mod ingest_concurrency;
mod ingest_errors;
mod ingest_fixtures;
mod ingest_writer;
mod limits;
mod mcp;
mod providers;
mod queue;
mod rate_limits;
mod subscriptions;
mod triage;
