//! Jobs: the kinds of background work and their payloads, and the queue's retry policy.
//!
//! A job row is inserted in the same transaction as the data it concerns (see
//! [`crate::store::job`]); the worker crate claims and runs it. Kinds are stable `snake_case`
//! strings because they are stored in the database and shown in dashboards.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::indicator::Indicator;
use crate::normalize::RuleRef;

/// The job that takes a freshly ingested alert through the pipeline.
pub const ENRICH_ALERT: &str = "enrich_alert";

/// The job that posts one `alert.enriched` event to one agent's webhook.
pub const DELIVER_WEBHOOK: &str = "deliver_webhook";

/// What [`ENRICH_ALERT`] needs: everything ingest already computed, so the worker never parses
/// the raw payload again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichAlert {
    pub alert_id: Uuid,
    pub indicators: Vec<Indicator>,
    /// The detection rule the payload names; its row is created the first time a
    /// (source, rule id) pair is seen.
    pub detection_rule: Option<RuleRef>,
    /// Whether matching agents are sent `alert.enriched` when the run ends: always after
    /// ingest; after a re-enrichment only when asked.
    #[serde(default = "yes")]
    pub notify_agents: bool,
    /// A stored result counts as fresh only when written at or after this time, besides being
    /// unexpired: set by a re-enrichment that asks every provider again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_after: Option<chrono::DateTime<chrono::Utc>>,
}

fn yes() -> bool {
    true
}

/// What [`DELIVER_WEBHOOK`] needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    pub delivery_id: Uuid,
}

/// A job as handed to a worker by a claim. `lease_token` is the fencing token: only the
/// current holder can finish the job.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_token: Uuid,
}

/// How long to wait before attempt `attempt + 1`: exponential from one second, capped at one
/// hour, with "equal jitter" (half fixed, half random) so that jobs which failed together do
/// not retry together.
pub fn retry_delay(attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 13) - 1;
    let ceiling = Duration::from_secs(1u64 << exponent).min(Duration::from_secs(3600));
    let half = ceiling / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_exponentially_and_is_capped() {
        for attempt in 1..20 {
            let delay = retry_delay(attempt);
            let ceiling =
                Duration::from_secs(1u64 << (attempt.min(13) - 1)).min(Duration::from_secs(3600));
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
        }
    }
}
