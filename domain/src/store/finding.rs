//! The `finding` table: what agents (and people) concluded about an alert.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingRow {
    pub finding_id: Uuid,
    pub alert_id: Uuid,
    pub agent_name: String,
    pub summary: String,
    pub confidence: Option<f64>,
    pub recommended_action: Option<String>,
    pub evidence: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A finding to add.
#[derive(Debug, Clone)]
pub struct NewFinding<'a> {
    pub agent_name: &'a str,
    pub summary: &'a str,
    pub confidence: Option<f64>,
    pub recommended_action: Option<&'a str>,
    pub evidence: &'a serde_json::Value,
}

/// Adds a finding and logs it on the alert; `None` when the alert does not exist.
pub async fn insert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    finding: &NewFinding<'_>,
    actor: &str,
) -> Result<Option<FindingRow>, sqlx::Error> {
    sqlx::query_as!(
        FindingRow,
        r#"with added as (
               insert into finding (alert_id, agent_name, summary, confidence, recommended_action,
                                    evidence)
               select alert_id, $2, $3, $4, $5, $6 from alert where alert_id = $1
               returning *
           ),
           logged as (
               insert into activity (alert_id, event_type, actor, details)
               select alert_id, 'finding.added', $7,
                      json_build_object('finding_id', finding_id, 'agent_name', agent_name,
                                        'summary', summary, 'confidence', confidence)
               from added
           )
           select finding_id as "finding_id!", alert_id as "alert_id!",
                  agent_name as "agent_name!", summary as "summary!", confidence,
                  recommended_action, evidence as "evidence!", created_at as "created_at!"
           from added"#,
        alert_id,
        finding.agent_name,
        finding.summary,
        finding.confidence,
        finding.recommended_action,
        finding.evidence,
        actor,
    )
    .fetch_optional(db)
    .await
}

/// An alert's findings, oldest first.
pub async fn for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Vec<FindingRow>, sqlx::Error> {
    sqlx::query_as!(
        FindingRow,
        "select finding_id, alert_id, agent_name, summary, confidence, recommended_action, evidence,
                created_at
         from finding where alert_id = $1 order by created_at, finding_id",
        alert_id,
    )
    .fetch_all(db)
    .await
}
