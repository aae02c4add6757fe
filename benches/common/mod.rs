//! Set-up every benchmark shares: a fresh database of its own on the server `DATABASE_URL`
//! names, migrated, dropped again at the end; and an API key.

#![allow(dead_code)] // each benchmark uses the parts it needs

use std::str::FromStr;

/// The allocator the `alertgraph` binary uses (src/main.rs), so figures match production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sqlx::postgres::PgConnectOptions;
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
        // The options `alertgraph` uses (`src/database.rs`).
        let db = domain::store::pool_options(connections)
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
    domain::api_key::create(db, &new, "bench").await.unwrap().1
}

/// CPU time read from Linux's `/proc`, in clock ticks (USER_HZ, 100 a second on Linux): what the
/// whole machine spent busy and idle, and what this process spent. `None` where `/proc` is not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuTicks {
    busy: u64,
    idle: u64,
    process: u64,
}

impl CpuTicks {
    pub(crate) fn now() -> Option<CpuTicks> {
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        // cpu user nice system idle iowait irq softirq steal …
        let ticks: Vec<u64> = machine
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name's closing parenthesis, utime and stime are fields 12 and 13.
        let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
        Some(CpuTicks { busy: ticks.iter().sum::<u64>() - idle, idle, process })
    }

    /// What was spent since `start`, for `operations` operations: the share of the machine that
    /// was busy, and the CPU time of the machine and of this process per operation.
    pub(crate) fn since(start: Option<CpuTicks>, operations: usize) -> String {
        let (Some(start), Some(end)) = (start, CpuTicks::now()) else { return String::new() };
        let busy = end.busy.saturating_sub(start.busy) as f64;
        let idle = end.idle.saturating_sub(start.idle) as f64;
        let per = |ticks: f64| ticks * 10.0 / operations.max(1) as f64;
        format!(
            "; machine {:.0} % busy, CPU {:.2} ms per operation ({:.2} ms in this process)",
            100.0 * busy / (busy + idle).max(1.0),
            per(busy),
            per(end.process.saturating_sub(start.process) as f64)
        )
    }
}
