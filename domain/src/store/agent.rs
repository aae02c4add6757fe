//! The `agent` table. Secrets (the signing secret, the auth header's value) are stored sealed
//! and never read back by listings. A statement trigger notifies
//! [`crate::notify::CONFIG_CHANGED`] on every write, so every worker reloads its agents.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// An agent as listed: no secrets.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentRow {
    pub agent_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub webhook_url: String,
    pub auth_header_name: Option<String>,
    pub trigger_filter: serde_json::Value,
    pub timeout_seconds: i32,
    pub is_active: bool,
    pub deactivated_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What delivering to an agent needs, secrets sealed.
#[derive(Debug, Clone)]
pub struct AgentSecrets {
    pub agent_id: Uuid,
    pub name: String,
    pub webhook_url: String,
    pub auth_header_name: Option<String>,
    pub auth_header_value: Option<Vec<u8>>,
    pub signing_secret: Vec<u8>,
    pub timeout_seconds: i32,
    pub is_active: bool,
}

/// The fields of an agent besides its secrets.
#[derive(Debug, Clone)]
pub struct AgentFields {
    pub name: String,
    pub description: Option<String>,
    pub webhook_url: String,
    pub trigger_filter: serde_json::Value,
    pub timeout_seconds: i32,
    pub is_active: bool,
}

/// Inserts an agent; `None` when the name is taken.
pub async fn insert(
    db: impl PgExecutor<'_>,
    fields: &AgentFields,
    auth_header: Option<(&str, &[u8])>,
    signing_secret: &[u8],
) -> Result<Option<AgentRow>, sqlx::Error> {
    sqlx::query_as!(
        AgentRow,
        "insert into agent (name, description, webhook_url, auth_header_name, auth_header_value,
                            signing_secret, trigger_filter, timeout_seconds, is_active)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict on constraint agent_name_key do nothing
         returning agent_id, name, description, webhook_url, auth_header_name, trigger_filter,
                   timeout_seconds, is_active, deactivated_reason, created_at, updated_at",
        fields.name,
        fields.description,
        fields.webhook_url,
        auth_header.map(|(name, _)| name),
        auth_header.map(|(_, value)| value),
        signing_secret,
        fields.trigger_filter,
        fields.timeout_seconds,
        fields.is_active,
    )
    .fetch_optional(db)
    .await
}

/// Replaces an agent's fields. `auth_header`: `None` keeps it, `Some(None)` removes it.
/// Reactivating clears the reason it was deactivated.
pub async fn update(
    db: impl PgExecutor<'_>,
    agent_id: Uuid,
    fields: &AgentFields,
    auth_header: Option<Option<(&str, &[u8])>>,
) -> Result<Option<AgentRow>, sqlx::Error> {
    let header = auth_header.flatten();
    sqlx::query_as!(
        AgentRow,
        "update agent
         set name = $2, description = $3, webhook_url = $4, trigger_filter = $5,
             timeout_seconds = $6, is_active = $7,
             deactivated_reason = case when $7 then null else deactivated_reason end,
             auth_header_name = case when $8 then $9 else auth_header_name end,
             auth_header_value = case when $8 then $10 else auth_header_value end,
             updated_at = now()
         where agent_id = $1
         returning agent_id, name, description, webhook_url, auth_header_name, trigger_filter,
                   timeout_seconds, is_active, deactivated_reason, created_at, updated_at",
        agent_id,
        fields.name,
        fields.description,
        fields.webhook_url,
        fields.trigger_filter,
        fields.timeout_seconds,
        fields.is_active,
        auth_header.is_some(),
        header.map(|(name, _)| name),
        header.map(|(_, value)| value),
    )
    .fetch_optional(db)
    .await
}

pub async fn set_signing_secret(
    db: impl PgExecutor<'_>,
    agent_id: Uuid,
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "update agent set signing_secret = $2, updated_at = now() where agent_id = $1",
        agent_id,
        sealed
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// Deactivates an agent because its webhook said it is gone (410).
pub async fn deactivate(
    db: impl PgExecutor<'_>,
    agent_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update agent set is_active = false, deactivated_reason = $2, updated_at = now()
         where agent_id = $1 and is_active",
        agent_id,
        reason
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete(db: impl PgExecutor<'_>, agent_id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted =
        sqlx::query!("delete from agent where agent_id = $1", agent_id).execute(db).await?;
    Ok(deleted.rows_affected() > 0)
}

pub async fn get(db: impl PgExecutor<'_>, agent_id: Uuid) -> Result<Option<AgentRow>, sqlx::Error> {
    sqlx::query_as!(
        AgentRow,
        "select agent_id, name, description, webhook_url, auth_header_name, trigger_filter,
                timeout_seconds, is_active, deactivated_reason, created_at, updated_at
         from agent where agent_id = $1",
        agent_id
    )
    .fetch_optional(db)
    .await
}

/// Every agent, by name.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<AgentRow>, sqlx::Error> {
    sqlx::query_as!(
        AgentRow,
        "select agent_id, name, description, webhook_url, auth_header_name, trigger_filter,
                timeout_seconds, is_active, deactivated_reason, created_at, updated_at
         from agent order by name"
    )
    .fetch_all(db)
    .await
}

pub async fn secrets(
    db: impl PgExecutor<'_>,
    agent_id: Uuid,
) -> Result<Option<AgentSecrets>, sqlx::Error> {
    sqlx::query_as!(
        AgentSecrets,
        "select agent_id, name, webhook_url, auth_header_name, auth_header_value, signing_secret,
                timeout_seconds, is_active
         from agent where agent_id = $1",
        agent_id
    )
    .fetch_optional(db)
    .await
}

/// Every sealed secret, locked for the caller's transaction (for key rotation).
pub async fn lock_all_secrets(
    db: &mut sqlx::PgConnection,
) -> Result<Vec<(Uuid, Vec<u8>, Option<Vec<u8>>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "select agent_id, signing_secret, auth_header_value from agent order by agent_id for update"
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.agent_id, r.signing_secret, r.auth_header_value)).collect())
}

pub async fn replace_secrets(
    db: impl PgExecutor<'_>,
    agent_id: Uuid,
    signing_secret: &[u8],
    auth_header_value: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update agent set signing_secret = $2, auth_header_value = $3 where agent_id = $1",
        agent_id,
        signing_secret,
        auth_header_value
    )
    .execute(db)
    .await?;
    Ok(())
}
