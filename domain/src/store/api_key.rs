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
/// one-minute window, which window that is, and how long it still runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    pub granted: i32,
    pub window_start: DateTime<Utc>,
    pub window_left: std::time::Duration,
}

/// Takes up to `wanted` requests from the key's budget of `limit` a minute, for all replicas
/// together, in one statement. The window is the minute of the database's clock when the row
/// lock is held, and it never moves back: a taker whose statement started before a minute
/// boundary but got the lock after it takes from the newer window.
pub async fn take_requests(
    db: impl PgExecutor<'_>,
    api_key_id: Uuid,
    limit: i32,
    wanted: i32,
) -> Result<Taken, sqlx::Error> {
    let row = sqlx::query!(
        r#"insert into api_key_usage as u (api_key_id, window_start, used, granted)
           values ($1, date_trunc('minute', clock_timestamp()), least($2::int4, $3::int4),
                   least($2, $3))
           on conflict (api_key_id) do update set
               granted = case when u.window_start >= date_trunc('minute', clock_timestamp())
                              then greatest(0, least($3, $2 - u.used))
                              else least($2, $3) end,
               used = case when u.window_start >= date_trunc('minute', clock_timestamp())
                           then u.used + greatest(0, least($3, $2 - u.used))
                           else least($2, $3) end,
               window_start = greatest(u.window_start, date_trunc('minute', clock_timestamp()))
           returning granted, window_start,
                     extract(epoch from window_start + interval '1 minute' - clock_timestamp())
                       ::float8 as "window_left!""#,
        api_key_id,
        limit,
        wanted,
    )
    .fetch_one(db)
    .await?;
    Ok(Taken {
        granted: row.granted,
        window_start: row.window_start,
        window_left: std::time::Duration::from_secs_f64(row.window_left.max(0.0)),
    })
}
