//! The `api_key` table. Only digests are stored; see [`crate::api_key`].

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::Source;
use crate::api_key::{KeyType, NewKey, Principal, Scope};

/// Inserts a key; the `api_key_notify` trigger tells every process to drop its key cache.
pub async fn insert(
    db: impl PgExecutor<'_>,
    new: &NewKey,
    prefix: &str,
    digest: &[u8; 32],
) -> Result<Uuid, sqlx::Error> {
    let scopes: Vec<String> = new.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let allowed: Option<Vec<String>> = new
        .allowed_sources
        .as_ref()
        .map(|sources| sources.iter().map(|s| s.as_str().to_owned()).collect());
    sqlx::query_scalar!(
        r#"insert into api_key (name, prefix, key_hash, scopes, key_type, allowed_sources,
                                expires_at, rate_limit_per_minute)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           returning api_key_id"#,
        new.name.trim(),
        prefix,
        &digest[..],
        &scopes,
        new.key_type.as_str(),
        allowed.as_deref(),
        new.expires_at,
        new.rate_limit_per_minute,
    )
    .fetch_one(db)
    .await
}

/// The live (unrevoked) key with this digest, with the stored digest for comparison.
pub async fn find_active(
    db: impl PgExecutor<'_>,
    digest: &[u8; 32],
) -> Result<Option<(Principal, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query!(
        "select api_key_id, name, prefix, key_hash, scopes, key_type, allowed_sources, expires_at,
                rate_limit_per_minute
         from api_key where key_hash = $1 and revoked_at is null",
        &digest[..],
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| {
        let principal = Principal {
            api_key_id: row.api_key_id,
            name: row.name,
            prefix: row.prefix,
            // The CHECK constraint admits only known scopes and types.
            scopes: row.scopes.iter().filter_map(|s| s.parse::<Scope>().ok()).collect(),
            key_type: row.key_type.parse().unwrap_or(KeyType::Human),
            allowed_sources: row
                .allowed_sources
                .map(|sources| sources.iter().filter_map(|s| s.parse::<Source>().ok()).collect()),
            expires_at: row.expires_at,
            rate_limit_per_minute: row.rate_limit_per_minute,
        };
        (principal, row.key_hash)
    }))
}

/// Revokes a live key by its visible prefix; the `api_key_notify` trigger tells every process
/// to drop its key cache.
pub async fn revoke(db: impl PgExecutor<'_>, prefix: &str) -> Result<bool, sqlx::Error> {
    let revoked = sqlx::query_scalar!(
        r#"update api_key set revoked_at = now()
           where prefix = $1 and revoked_at is null
           returning api_key_id"#,
        prefix,
    )
    .fetch_optional(db)
    .await?;
    Ok(revoked.is_some())
}

/// A key as listed: everything but its digest.
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub api_key_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub key_type: String,
    pub allowed_sources: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_minute: Option<i32>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<KeyListing>, sqlx::Error> {
    sqlx::query_as!(
        KeyListing,
        "select api_key_id, name, prefix, scopes, key_type, allowed_sources, expires_at,
                rate_limit_per_minute, revoked_at, created_at
         from api_key order by created_at desc",
    )
    .fetch_all(db)
    .await
}

/// What [`take_requests`] got: how many of the requests asked for fit in the key's current
/// one-minute window, and how long that window still runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    pub granted: i32,
    pub window_left: std::time::Duration,
}

/// Takes up to `wanted` requests from the key's budget of `limit` a minute, for all replicas
/// together: the window is the database's current minute, and the row lock makes concurrent
/// takers queue.
pub async fn take_requests(
    db: &sqlx::PgPool,
    api_key_id: Uuid,
    limit: i32,
    wanted: i32,
) -> Result<Taken, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "insert into api_key_usage (api_key_id, window_start, used)
         values ($1, date_trunc('minute', now()), 0)
         on conflict (api_key_id) do nothing",
        api_key_id,
    )
    .execute(&mut *tx)
    .await?;
    let usage = sqlx::query!(
        r#"select case when window_start = date_trunc('minute', now()) then used else 0 end
                    as "used!",
                  extract(epoch from date_trunc('minute', now()) + interval '1 minute' - now())
                    ::float8 as "window_left!"
           from api_key_usage where api_key_id = $1 for update"#,
        api_key_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let granted = wanted.min(limit - usage.used).max(0);
    sqlx::query!(
        "update api_key_usage set window_start = date_trunc('minute', now()), used = $2
         where api_key_id = $1",
        api_key_id,
        usage.used + granted,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let window_left = std::time::Duration::from_secs_f64(usage.window_left.max(0.0));
    Ok(Taken { granted, window_left })
}
