//! Posting one delivery to its agent's webhook, signed per the Standard Webhooks spec:
//! `webhook-id` (the delivery's id, the same on every retry and redelivery),
//! `webhook-timestamp` (seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` keyed with the base64 part of the agent's `whsec_` secret; plus the
//! agent's own auth header.
//!
//! Every attempt is recorded. 2xx delivers; 410 deactivates the agent; any other 4xx but 408
//! and 429 fails for good (redeliverable); 408, 429, 5xx, timeouts and connection errors are
//! retried on [`DELIVERY_SCHEDULE`] (about a day, with jitter) and then fail.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use super::batches::DeliveryBatches;
use crate::outbound::{OutboundPolicy, refusal};
use crate::secret::SecretKey;
use crate::store::delivery::{self as delivery_store, Attempt, Outgoing, RecordedAttempt};

/// Waits before each retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h — the tenth
/// attempt comes about 23 hours after the first. Each wait is jittered by ±20 %.
pub const DELIVERY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
];

/// The job's own attempt limit, a safety net: the schedule decides when a delivery fails.
pub(crate) fn max_attempts() -> i32 {
    50
}

/// The most of a receiver's answer kept with an attempt.
const EXCERPT_BYTES: usize = 1024;

/// How a delivery job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The receiver answered 2xx.
    Delivered,
    /// Try again after this long.
    Retry { after: Duration, error: String },
    /// Given up: a permanent refusal, or the schedule is used up.
    Failed(String),
    /// Nothing to do: already delivered, or the agent is inactive or gone.
    Skipped,
}

/// Sends deliveries. One per worker.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    key: SecretKey,
    policy: OutboundPolicy,
    schedule: Vec<Duration>,
    /// Started on the first delivery, with that call's pool; shared by clones.
    batches: Arc<OnceLock<DeliveryBatches>>,
}

impl Deliverer {
    pub fn new(key: SecretKey, policy: OutboundPolicy) -> Deliverer {
        Deliverer::with_schedule(key, policy, DELIVERY_SCHEDULE.to_vec())
    }

    /// A deliverer with another retry schedule (tests use milliseconds).
    pub fn with_schedule(
        key: SecretKey,
        policy: OutboundPolicy,
        schedule: Vec<Duration>,
    ) -> Deliverer {
        let client =
            policy.client_without_redirects(concat!("alertgraph/", env!("CARGO_PKG_VERSION")));
        Deliverer { client, key, policy, schedule, batches: Arc::default() }
    }

    /// Makes one attempt at a delivery and records it.
    #[tracing::instrument(skip_all, fields(delivery.id = %delivery_id))]
    pub async fn deliver(&self, db: &PgPool, delivery_id: Uuid) -> Result<Delivered, sqlx::Error> {
        let batches = self.batches.get_or_init(|| DeliveryBatches::spawn(db.clone()));
        let Some(outgoing) = batches.outgoing(delivery_id).await? else {
            return Ok(Delivered::Skipped);
        };
        if matches!(outgoing.status.as_str(), "delivered" | "failed" | "cancelled") {
            return Ok(Delivered::Skipped);
        }
        if !outgoing.agent.is_active {
            delivery_store::cancel(db, delivery_id, "the agent is inactive").await?;
            return Ok(Delivered::Skipped);
        }
        let started = Instant::now();
        let sent = self.send(&outgoing).await;
        let latency = started.elapsed();
        let latency_ms = latency.as_millis().min(i32::MAX as u128) as i32;
        // Refused by the SSRF guard: nothing was called, so there is no latency to count.
        let called = !matches!(sent, Err(SendError::Refused(_)));
        let retries_left = (outgoing.attempts as usize) < self.schedule.len();
        let (attempt, outcome) = match sent {
            Ok((status, excerpt)) => {
                let code = status.as_u16();
                let attempt = Attempt {
                    status_code: Some(i32::from(code)),
                    latency_ms,
                    error: (!status.is_success()).then(|| format!("the webhook answered {status}")),
                    response_excerpt: Some(excerpt),
                };
                let outcome = if status.is_success() {
                    Delivered::Delivered
                } else if code == 410 {
                    Delivered::Failed(
                        "the webhook answered 410 Gone; the agent was deactivated".into(),
                    )
                } else if status.is_client_error() && code != 408 && code != 429 {
                    Delivered::Failed(format!("the webhook answered {status}"))
                } else if retries_left {
                    Delivered::Retry {
                        after: self.wait(outgoing.attempts as usize),
                        error: format!("the webhook answered {status}"),
                    }
                } else {
                    Delivered::Failed(format!("the webhook answered {status}; no retries left"))
                };
                (attempt, outcome)
            }
            Err(SendError::Refused(error)) => {
                let error = format!("refused by the SSRF guard: {error}");
                let attempt = Attempt {
                    status_code: None,
                    latency_ms,
                    error: Some(error.clone()),
                    response_excerpt: None,
                };
                (attempt, Delivered::Failed(error))
            }
            Err(SendError::Failed(error)) => {
                let attempt = Attempt {
                    status_code: None,
                    latency_ms,
                    error: Some(error.clone()),
                    response_excerpt: None,
                };
                let outcome = if retries_left {
                    Delivered::Retry { after: self.wait(outgoing.attempts as usize), error }
                } else {
                    Delivered::Failed(format!("{error}; no retries left"))
                };
                (attempt, outcome)
            }
        };
        let counted = match &outcome {
            Delivered::Delivered => "delivered",
            Delivered::Retry { .. } => "retry",
            Delivered::Failed(_) | Delivered::Skipped => "failed",
        };
        crate::metrics::global().delivery(counted, called.then_some(latency));
        let (status, next) = match &outcome {
            Delivered::Delivered => ("delivered", None),
            Delivered::Retry { after, .. } => (
                "retrying",
                chrono::Duration::from_std(*after).ok().map(|after| chrono::Utc::now() + after),
            ),
            Delivered::Failed(_) | Delivered::Skipped => ("failed", None),
        };
        if attempt.status_code == Some(410) {
            let mut tx = db.begin().await?;
            let attempt = RecordedAttempt { delivery_id, attempt, status, next_attempt_at: next };
            delivery_store::record_attempts(&mut *tx, &[attempt]).await?;
            let reason = "its webhook answered 410 Gone";
            crate::store::agent::deactivate(&mut *tx, outgoing.agent.agent_id, reason).await?;
            tx.commit().await?;
        } else {
            let attempt = RecordedAttempt { delivery_id, attempt, status, next_attempt_at: next };
            batches.record(attempt).await?;
        }
        Ok(outcome)
    }

    /// Sends a signed `agent.test` event to an agent's webhook now, whatever its filter or
    /// state, and reports the answer. Nothing is recorded. `None` when there is no such agent.
    pub async fn test_agent(
        &self,
        db: &PgPool,
        agent_id: Uuid,
    ) -> Result<Option<Attempt>, sqlx::Error> {
        let Some(agent) = crate::store::agent::secrets(db, agent_id).await? else {
            return Ok(None);
        };
        let body = serde_json::json!({
            "event": "agent.test",
            "version": 1,
            "agent": {"uuid": agent.agent_id, "name": agent.name},
            "sent_at": chrono::Utc::now(),
        })
        .to_string();
        let outgoing = Outgoing {
            delivery_id: Uuid::new_v4(),
            alert_id: Uuid::nil(),
            status: "pending".into(),
            attempts: 0,
            body,
            agent,
        };
        let started = Instant::now();
        let sent = self.send(&outgoing).await;
        let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        Ok(Some(match sent {
            Ok((status, excerpt)) => Attempt {
                status_code: Some(i32::from(status.as_u16())),
                latency_ms,
                error: (!status.is_success()).then(|| format!("the webhook answered {status}")),
                response_excerpt: Some(excerpt),
            },
            Err(SendError::Refused(error)) => Attempt {
                status_code: None,
                latency_ms,
                error: Some(format!("refused by the SSRF guard: {error}")),
                response_excerpt: None,
            },
            Err(SendError::Failed(error)) => Attempt {
                status_code: None,
                latency_ms,
                error: Some(error),
                response_excerpt: None,
            },
        }))
    }

    /// The wait before retry number `done` (0-based), jittered by ±20 %.
    fn wait(&self, done: usize) -> Duration {
        let base = self.schedule[done.min(self.schedule.len() - 1)];
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    async fn send(&self, outgoing: &Outgoing) -> Result<(reqwest::StatusCode, String), SendError> {
        let agent = &outgoing.agent;
        self.policy
            .check_url(&agent.webhook_url)
            .map_err(|error| SendError::Refused(error.to_string()))?;
        let secret = self
            .key
            .open(&agent.signing_secret)
            .map_err(|e| SendError::Failed(format!("cannot read the signing secret: {e}")))?;
        let secret = String::from_utf8(secret)
            .map_err(|_| SendError::Failed("the signing secret is corrupt".into()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let id = outgoing.delivery_id.to_string();
        let signature = sign(&secret, &id, timestamp, outgoing.body.as_bytes())
            .ok_or_else(|| SendError::Failed("the signing secret is not whsec_ base64".into()))?;
        let mut request = self
            .client
            .post(&agent.webhook_url)
            .timeout(Duration::from_secs(agent.timeout_seconds.max(1) as u64))
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
        if let (Some(name), Some(sealed)) = (&agent.auth_header_name, &agent.auth_header_value) {
            let value = self
                .key
                .open(sealed)
                .map_err(|e| SendError::Failed(format!("cannot read the auth header: {e}")))?;
            let value = String::from_utf8(value)
                .map_err(|_| SendError::Failed("the auth header is corrupt".into()))?;
            request = request.header(name.as_str(), value);
        }
        let response = request.body(outgoing.body.clone()).send().await.map_err(|error| {
            match refusal(&error) {
                Some(refused) => SendError::Refused(refused.to_string()),
                None if error.is_timeout() => {
                    SendError::Failed(format!("no answer within {} s", agent.timeout_seconds))
                }
                None => SendError::Failed(describe(&error)),
            }
        })?;
        let status = response.status();
        // Read at most the excerpt, within what is left of the timeout.
        let mut excerpt = Vec::new();
        let mut response = response;
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(EXCERPT_BYTES);
        Ok((status, String::from_utf8_lossy(&excerpt).into_owned()))
    }
}

enum SendError {
    Refused(String),
    Failed(String),
}

/// An error with its causes, for the attempt log.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
/// keyed with the decoded base64 after `whsec_`. `None` when the secret is not in that form.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
