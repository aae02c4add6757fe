//! API keys: `cai_` + 43 base62 characters (256 bits), stored only as their SHA-256 digest.
//!
//! Keys are high-entropy random strings, so a fast hash is as safe as bcrypt here and costs
//! nothing per request (the reference system ran bcrypt on every call). Verified keys are kept
//! in a small per-process cache for [`CACHE_TTL`]; creating or revoking a key notifies
//! [`crate::notify::API_KEY_CHANGED`] and every process drops its cache, so a revocation is in
//! force at once and no request writes to the database to be authenticated. Keys with a rate
//! limit are the exception: [`RateLimiter`] writes their shared count a few times a minute.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::alert::{Source, UnknownValue};
use crate::store;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "cai_";
/// Random characters after [`KEY_PREFIX`]: 43 × log2(62) ≈ 256 bits.
const KEY_RANDOM_CHARS: usize = 43;
/// How many characters of a key are stored in clear to name it in listings.
const VISIBLE_PREFIX_CHARS: usize = KEY_PREFIX.len() + 8;
/// How long a verified key is trusted without asking the database again, should a
/// notification be missed (the listener reconnecting, say).
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Upper bound on cached keys, so random bearer tokens cannot grow memory.
const CACHE_CAPACITY: usize = 10_000;

/// What a key may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "alerts:read")]
    AlertsRead,
    #[serde(rename = "alerts:write")]
    AlertsWrite,
    #[serde(rename = "enrichments:read")]
    EnrichmentsRead,
    #[serde(rename = "agents:read")]
    AgentsRead,
    #[serde(rename = "agents:write")]
    AgentsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::AlertsRead,
        Scope::AlertsWrite,
        Scope::EnrichmentsRead,
        Scope::AgentsRead,
        Scope::AgentsWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AlertsRead => "alerts:read",
            Scope::AlertsWrite => "alerts:write",
            Scope::EnrichmentsRead => "enrichments:read",
            Scope::AgentsRead => "agents:read",
            Scope::AgentsWrite => "agents:write",
            Scope::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownValue { what: "scope", value: s.to_owned() })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a key belongs to a person or to an automated agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Human,
    Agent,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Human => "human",
            KeyType::Agent => "agent",
        }
    }
}

impl FromStr for KeyType {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(KeyType::Human),
            "agent" => Ok(KeyType::Agent),
            _ => Err(UnknownValue { what: "key type", value: s.to_owned() }),
        }
    }
}

/// The caller behind a verified key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub api_key_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub key_type: KeyType,
    /// `None`: the key may ingest into every source.
    pub allowed_sources: Option<Vec<Source>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests a minute across every replica; `None`: unlimited.
    pub rate_limit_per_minute: Option<i32>,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&held| held == scope || held == Scope::Admin)
    }

    pub fn may_ingest_into(&self, source: Source) -> bool {
        self.allowed_sources.as_ref().is_none_or(|allowed| allowed.contains(&source))
    }

    fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

/// Why a presented key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was presented")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has expired")]
    Expired,
    #[error(
        "this API key has used its {limit} requests for this minute; retry in {} s",
        retry_after_seconds(*retry_after)
    )]
    RateLimited { limit: i32, retry_after: Duration },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whole seconds until a refused key may retry, as `Retry-After` gives them: rounded up, and
/// at least 1.
pub fn retry_after_seconds(retry_after: Duration) -> u64 {
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

/// A new key's settings.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub key_type: KeyType,
    pub allowed_sources: Option<Vec<Source>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests a minute across every replica; `None`: unlimited.
    pub rate_limit_per_minute: Option<i32>,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("a key needs a name")]
    BlankName,
    #[error("a key needs at least one scope")]
    NoScopes,
    #[error("expires_at is in the past")]
    ExpiresInPast,
    #[error("rate_limit_per_minute must be at least 1")]
    RateLimitNotPositive,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates a key and returns it with its plaintext, which is never stored or shown again.
/// `actor` (who asked) goes to the audit log with the key's name, prefix and scopes.
pub async fn create(
    db: &PgPool,
    new: &NewKey,
    actor: &str,
) -> Result<(Principal, String), CreateKeyError> {
    if new.name.trim().is_empty() {
        return Err(CreateKeyError::BlankName);
    }
    if new.scopes.is_empty() {
        return Err(CreateKeyError::NoScopes);
    }
    if new.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(CreateKeyError::ExpiresInPast);
    }
    if new.rate_limit_per_minute.is_some_and(|limit| limit < 1) {
        return Err(CreateKeyError::RateLimitNotPositive);
    }
    let plaintext = generate();
    let prefix = plaintext[..VISIBLE_PREFIX_CHARS].to_owned();
    let mut tx = db.begin().await?;
    let api_key_id = store::api_key::insert(&mut *tx, new, &prefix, &digest(&plaintext)).await?;
    let scopes: Vec<&str> = new.scopes.iter().map(|scope| scope.as_str()).collect();
    let details = serde_json::json!({
        "name": new.name.trim(), "prefix": prefix, "scopes": scopes,
        "key_type": new.key_type, "expires_at": new.expires_at,
        "rate_limit_per_minute": new.rate_limit_per_minute,
    });
    store::activity::record(&mut *tx, None, "api_key.created", actor, &details).await?;
    tx.commit().await?;
    let principal = Principal {
        api_key_id,
        name: new.name.trim().to_owned(),
        prefix,
        scopes: new.scopes.clone(),
        key_type: new.key_type,
        allowed_sources: new.allowed_sources.clone(),
        expires_at: new.expires_at,
        rate_limit_per_minute: new.rate_limit_per_minute,
    };
    Ok((principal, plaintext))
}

fn generate() -> String {
    let random: String =
        rand::rng().sample_iter(&Alphanumeric).take(KEY_RANDOM_CHARS).map(char::from).collect();
    format!("{KEY_PREFIX}{random}")
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Verified keys by digest, with the time each was read from the database.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl KeyCache {
    /// Resolves a presented key to its principal: from the cache when it is fresh, else from
    /// the database (one indexed read by digest). Expiry is checked on every call.
    pub async fn verify(&self, db: &PgPool, presented: &str) -> Result<Principal, AuthError> {
        if !presented.starts_with(KEY_PREFIX) {
            return Err(AuthError::Invalid);
        }
        let digest = digest(presented);
        let principal = match self.cached(&digest) {
            Some(principal) => principal,
            None => {
                let (principal, stored_digest) =
                    store::api_key::find_active(db, &digest).await?.ok_or(AuthError::Invalid)?;
                // The row was found by digest; comparing in constant time as well keeps the
                // check honest should the lookup ever change to something looser.
                if !bool::from(stored_digest.as_slice().ct_eq(&digest)) {
                    return Err(AuthError::Invalid);
                }
                self.insert(digest, principal.clone());
                principal
            }
        };
        if principal.is_expired(Utc::now()) {
            return Err(AuthError::Expired);
        }
        Ok(principal)
    }

    /// Forgets every verified key; called when any key changes anywhere.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        let entries = self.lock();
        let (principal, loaded_at) = entries.get(digest)?;
        (loaded_at.elapsed() < CACHE_TTL).then(|| principal.clone())
    }

    fn insert(&self, digest: [u8; 32], principal: Principal) {
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAPACITY {
            entries.retain(|_, (_, loaded_at)| loaded_at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, (principal, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Principal, Instant)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A process takes a limited key's requests from the shared budget in parts of about this
/// fraction of its limit: one write per part instead of one per request. At most one part per
/// replica goes unused when a window ends, and a replica may refuse while another still holds
/// a part.
const LEASE_PARTS: i32 = 20;

/// Per-key request limits, for every replica together (SPEC §8): each key's budget for the
/// current minute lives in PostgreSQL (`api_key_usage`), and this process takes it in parts,
/// one take at a time per key. Once the budget of a window is spent, this process refuses the
/// key until the window ends without asking again.
#[derive(Debug, Default)]
pub struct RateLimiter {
    leases: Mutex<HashMap<Uuid, Lease>>,
    /// One take from the database at a time per key: the requests that find the part spent
    /// wait for it instead of each taking one.
    refills: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// The part of one window of a key's budget that this process holds.
#[derive(Debug, Clone, Copy)]
struct Lease {
    window: DateTime<Utc>,
    remaining: i32,
    until: Instant,
    /// The window's whole budget is spent (by any replica).
    spent: bool,
}

/// What the process's part of a key's budget says about one more request.
enum Held {
    Admitted,
    Refused(Duration),
    /// Nothing held for the current window: ask the database.
    Unknown,
}

impl RateLimiter {
    /// Admits one request of `principal`, or says when to retry.
    pub async fn admit(&self, db: &PgPool, principal: &Principal) -> Result<(), AuthError> {
        let Some(limit) = principal.rate_limit_per_minute else {
            return Ok(());
        };
        let key = principal.api_key_id;
        let refused = |retry_after| {
            crate::metrics::global().rate_limited();
            Err(AuthError::RateLimited { limit, retry_after })
        };
        match self.take_held(key) {
            Held::Admitted => return Ok(()),
            Held::Refused(retry_after) => return refused(retry_after),
            Held::Unknown => {}
        }
        let refill = self.refill_lock(key);
        let _refilling = refill.lock().await;
        // Another request may have refilled the part while this one waited.
        match self.take_held(key) {
            Held::Admitted => return Ok(()),
            Held::Refused(retry_after) => return refused(retry_after),
            Held::Unknown => {}
        }
        let wanted = (limit / LEASE_PARTS).max(1);
        let taken = store::api_key::take_requests(db, key, limit, wanted).await?;
        let until = Instant::now() + taken.window_left;
        let mut leases = lock(&self.leases);
        let fresh = Lease { window: taken.window_start, remaining: 0, until, spent: false };
        let lease = leases.entry(key).or_insert(fresh);
        if lease.window < taken.window_start {
            *lease = fresh;
        }
        if lease.window == taken.window_start {
            lease.until = until;
            lease.spent |= taken.granted == 0;
            lease.remaining += (taken.granted - 1).max(0);
        }
        if taken.granted == 0 { refused(taken.window_left) } else { Ok(()) }
    }

    /// Takes one request from the part this process holds for the key's current window.
    fn take_held(&self, key: Uuid) -> Held {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        let Some(lease) = leases.get_mut(&key).filter(|lease| now < lease.until) else {
            return Held::Unknown;
        };
        if lease.remaining > 0 {
            lease.remaining -= 1;
            Held::Admitted
        } else if lease.spent {
            Held::Refused(lease.until - now)
        } else {
            Held::Unknown
        }
    }

    fn refill_lock(&self, key: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.refills).entry(key).or_default().clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Revokes the key whose visible prefix is `prefix`, logging it as done by `actor`. Returns
/// whether a live key was revoked.
pub async fn revoke(db: &PgPool, prefix: &str, actor: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let revoked = store::api_key::revoke(&mut *tx, prefix).await?;
    if revoked {
        let details = serde_json::json!({ "prefix": prefix });
        store::activity::record(&mut *tx, None, "api_key.revoked", actor, &details).await?;
    }
    tx.commit().await?;
    Ok(revoked)
}

/// Every key, newest first, for listings. Digests are never returned.
pub async fn list(db: &PgPool) -> Result<Vec<store::api_key::KeyListing>, sqlx::Error> {
    store::api_key::list(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_base62_and_distinct() {
        let key = generate();
        assert!(key.starts_with("cai_"));
        assert_eq!(key.len(), 4 + 43);
        assert!(key[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(generate(), key);
    }

    #[test]
    fn admin_scope_implies_every_other_scope() {
        let principal = Principal {
            api_key_id: Uuid::nil(),
            name: "ops".into(),
            prefix: "cai_12345678".into(),
            scopes: vec![Scope::Admin],
            key_type: KeyType::Human,
            allowed_sources: None,
            expires_at: None,
            rate_limit_per_minute: None,
        };
        assert!(Scope::ALL.iter().all(|&scope| principal.has_scope(scope)));
    }
}
