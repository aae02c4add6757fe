//! Agents (SPEC §5): the AI agents and automations alertgraph pushes enriched alerts to. Each
//! has a webhook URL (checked by the SSRF guard), an optional auth header whose value is sealed
//! at rest, a Standard Webhooks signing secret (generated, shown once, sealed), a trigger
//! filter, a timeout, and an active flag that a `410 Gone` from its webhook turns off.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::outbound::OutboundPolicy;
use crate::secret::{SecretError, SecretKey};
use crate::store::agent::{self as agent_store, AgentFields, AgentRow};
use crate::targeting::{RuleProblem, TriggerFilter};

/// Headers alertgraph sets itself; an agent's own auth header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "user-agent",
];

/// An agent as people write it.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentInput {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub webhook_url: String,
    /// `None` keeps the current header on update; on create, none.
    #[serde(default)]
    pub auth_header: Option<AuthHeader>,
    /// On update: remove the auth header.
    #[serde(default)]
    pub remove_auth_header: bool,
    #[serde(default)]
    pub trigger_filter: Option<serde_json::Value>,
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

/// A header sent with every delivery, such as `Authorization: Bearer …`.
#[derive(Clone, Deserialize)]
pub struct AuthHeader {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeader")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleProblem>),
    #[error("an agent named {0:?} already exists")]
    Duplicate(String),
    #[error("no agent has id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A new agent and its signing secret, which is shown this once.
#[derive(Debug, Clone)]
pub struct CreatedAgent {
    pub agent: AgentRow,
    pub signing_secret: String,
}

impl AgentInput {
    fn validate(&self, policy: &OutboundPolicy) -> Result<AgentFields, AgentError> {
        let mut problems = Vec::new();
        let mut report = |field: &str, message: String| {
            problems.push(RuleProblem { field: field.to_owned(), message })
        };
        let name = self.name.trim();
        if name.is_empty() {
            report("name", "must not be blank".into());
        }
        if let Err(error) = policy.check_url(self.webhook_url.trim()) {
            report("webhook_url", error.to_string());
        }
        let timeout = self.timeout_seconds.unwrap_or(10);
        if !(1..=300).contains(&timeout) {
            report("timeout_seconds", "must be between 1 and 300".into());
        }
        if let Some(header) = &self.auth_header {
            if reqwest::header::HeaderName::from_bytes(header.name.trim().as_bytes()).is_err() {
                report(
                    "auth_header.name",
                    format!("{:?} is not a valid HTTP header name", header.name),
                );
            } else if RESERVED_HEADERS.contains(&header.name.trim().to_ascii_lowercase().as_str()) {
                report(
                    "auth_header.name",
                    format!("{:?} is set by alertgraph itself", header.name),
                );
            }
            if reqwest::header::HeaderValue::from_str(&header.value).is_err()
                || header.value.is_empty()
            {
                report(
                    "auth_header.value",
                    "must be a non-empty, visible-ASCII header value".into(),
                );
            }
        }
        let filter = match &self.trigger_filter {
            None | Some(serde_json::Value::Null) => Some(TriggerFilter::default()),
            Some(json) => match TriggerFilter::from_json(json) {
                Ok(filter) => Some(filter),
                Err(invalid) => {
                    for problem in invalid.problems {
                        report(
                            &crate::targeting::nested("trigger_filter", &problem.field),
                            problem.message,
                        );
                    }
                    None
                }
            },
        };
        match filter {
            Some(filter) if problems.is_empty() => Ok(AgentFields {
                name: name.to_owned(),
                description: self.description.clone().filter(|d| !d.trim().is_empty()),
                webhook_url: self.webhook_url.trim().to_owned(),
                trigger_filter: filter.to_json(),
                timeout_seconds: timeout,
                is_active: self.is_active,
            }),
            _ => Err(AgentError::Invalid(problems)),
        }
    }
}

/// A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub fn generate_signing_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", BASE64.encode(bytes))
}

pub async fn create(
    db: &PgPool,
    key: &SecretKey,
    policy: &OutboundPolicy,
    input: &AgentInput,
    actor: &str,
) -> Result<CreatedAgent, AgentError> {
    let fields = input.validate(policy)?;
    let secret = generate_signing_secret();
    let sealed_secret = key.seal(secret.as_bytes());
    let header = input
        .auth_header
        .as_ref()
        .map(|h| (h.name.trim().to_owned(), key.seal(h.value.as_bytes())));
    let mut tx = db.begin().await?;
    let agent = agent_store::insert(
        &mut *tx,
        &fields,
        header.as_ref().map(|(name, value)| (name.as_str(), value.as_slice())),
        &sealed_secret,
    )
    .await?
    .ok_or_else(|| AgentError::Duplicate(fields.name.clone()))?;
    log(&mut tx, "agent.created", actor, &agent).await?;
    tx.commit().await?;
    Ok(CreatedAgent { agent, signing_secret: secret })
}

pub async fn update(
    db: &PgPool,
    key: &SecretKey,
    policy: &OutboundPolicy,
    agent_id: Uuid,
    input: &AgentInput,
    actor: &str,
) -> Result<AgentRow, AgentError> {
    let fields = input.validate(policy)?;
    let header = input
        .auth_header
        .as_ref()
        .map(|h| (h.name.trim().to_owned(), key.seal(h.value.as_bytes())));
    let change = match (&header, input.remove_auth_header) {
        (Some((name, value)), _) => Some(Some((name.as_str(), value.as_slice()))),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let mut tx = db.begin().await?;
    let agent = match agent_store::update(&mut *tx, agent_id, &fields, change).await {
        Ok(Some(agent)) => agent,
        Ok(None) => return Err(AgentError::NotFound(agent_id)),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(AgentError::Duplicate(fields.name));
        }
        Err(error) => return Err(error.into()),
    };
    log(&mut tx, "agent.updated", actor, &agent).await?;
    tx.commit().await?;
    Ok(agent)
}

/// Replaces an agent's signing secret; the new one is returned this once.
pub async fn rotate_signing_secret(
    db: &PgPool,
    key: &SecretKey,
    agent_id: Uuid,
    actor: &str,
) -> Result<String, AgentError> {
    let secret = generate_signing_secret();
    let mut tx = db.begin().await?;
    if !agent_store::set_signing_secret(&mut *tx, agent_id, &key.seal(secret.as_bytes())).await? {
        return Err(AgentError::NotFound(agent_id));
    }
    let details = serde_json::json!({"agent_id": agent_id});
    crate::store::activity::record(&mut *tx, None, "agent.secret_rotated", actor, &details).await?;
    tx.commit().await?;
    Ok(secret)
}

pub async fn delete(db: &PgPool, agent_id: Uuid, actor: &str) -> Result<(), AgentError> {
    let mut tx = db.begin().await?;
    let agent =
        agent_store::get(&mut *tx, agent_id).await?.ok_or(AgentError::NotFound(agent_id))?;
    agent_store::delete(&mut *tx, agent_id).await?;
    log(&mut tx, "agent.deleted", actor, &agent).await?;
    tx.commit().await?;
    Ok(())
}

async fn log(
    tx: &mut sqlx::PgConnection,
    event: &str,
    actor: &str,
    agent: &AgentRow,
) -> Result<(), sqlx::Error> {
    // Secrets never reach the log: only the header's name, never its value.
    let details = serde_json::json!({
        "agent_id": agent.agent_id,
        "name": agent.name,
        "webhook_url": agent.webhook_url,
        "auth_header_name": agent.auth_header_name,
        "is_active": agent.is_active,
    });
    crate::store::activity::record(&mut *tx, None, event, actor, &details).await
}
