//! Set-up every benchmark shares: a fresh database of its own on the server `DATABASE_URL`
//! names, migrated, dropped again at the end; and an API key.

#![allow(dead_code)] // each benchmark uses the parts it needs

use std::str::FromStr;

/// The allocator the `alertgraph` binary uses (src/main.rs), so figures match production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, PgConnection, PgPool};

/// A database made for one benchmark run.
pub(crate) struct BenchDatabase {
    pub(crate) db: PgPool,
    admin: PgConnection,
    name: String,
}

impl BenchDatabase {
    /// Drops any leftover `name`, creates and migrates it, and connects a pool of `connections`.
    pub(crate) async fn create(name: &str, connections: u32) -> BenchDatabase {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://127.0.0.1:5432/postgres".into());
        let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL parses");
        let mut admin =
            options.clone().database("postgres").connect().await.expect("connecting to PostgreSQL");
        for statement in [
            format!("drop database if exists {name} with (force)"),
            format!("create database {name}"),
        ] {
            sqlx::query(AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
        }
        let db = PgPoolOptions::new()
            .max_connections(connections)
            // All opened at start, as `alertgraph` does (`src/database.rs`).
            .min_connections(connections)
            .connect_with(options.clone().database(name))
            .await
            .unwrap();
        domain::migrate(&db).await.unwrap();
        BenchDatabase { db, admin, name: name.to_owned() }
    }

    /// Closes the pool and drops the database.
    pub(crate) async fn drop(mut self) {
        self.db.close().await;
        let statement = format!("drop database {} with (force)", self.name);
        sqlx::query(AssertSqlSafe(statement)).execute(&mut self.admin).await.unwrap();
    }
}

/// A new agent key with `scopes`.
pub(crate) async fn api_key(db: &PgPool, scopes: &[domain::api_key::Scope]) -> String {
    let new = domain::api_key::NewKey {
        name: "bench".into(),
        scopes: scopes.to_vec(),
        key_type: domain::api_key::KeyType::Agent,
        allowed_sources: None,
        expires_at: None,
        rate_limit_per_minute: None,
    };
    domain::api_key::create(db, &new).await.unwrap().1
}
