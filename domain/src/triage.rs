//! Triage (SPEC §2, §5): people and agents move an alert through its lifecycle (Open →
//! Triaging → Escalated → Closed, closing with one of the seven close classifications), change
//! its severity, tags and verdict, judge indicators, post findings and ask for re-enrichment.
//! Every change is logged in the alert's activity.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::alert::{AlertStatus, Malice, Severity, UnknownValue};
use crate::store;
use crate::store::alert::{AlertRow, Triage};
use crate::store::finding::FindingRow;
use crate::targeting::RuleProblem;

/// Why an alert was closed: the seven classifications analysts know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseClassification {
    /// True Positive – Suspicious Activity.
    TruePositiveSuspiciousActivity,
    /// Benign Positive – Suspicious but Expected.
    BenignPositiveSuspiciousButExpected,
    /// False Positive – Incorrect Detection Logic.
    FalsePositiveIncorrectDetectionLogic,
    /// False Positive – Inaccurate Data.
    FalsePositiveInaccurateData,
    Undetermined,
    Duplicate,
    NotApplicable,
}

impl CloseClassification {
    pub const ALL: [CloseClassification; 7] = [
        CloseClassification::TruePositiveSuspiciousActivity,
        CloseClassification::BenignPositiveSuspiciousButExpected,
        CloseClassification::FalsePositiveIncorrectDetectionLogic,
        CloseClassification::FalsePositiveInaccurateData,
        CloseClassification::Undetermined,
        CloseClassification::Duplicate,
        CloseClassification::NotApplicable,
    ];

    /// The stored spelling (also the JSON one).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseClassification::TruePositiveSuspiciousActivity => {
                "true_positive_suspicious_activity"
            }
            CloseClassification::BenignPositiveSuspiciousButExpected => {
                "benign_positive_suspicious_but_expected"
            }
            CloseClassification::FalsePositiveIncorrectDetectionLogic => {
                "false_positive_incorrect_detection_logic"
            }
            CloseClassification::FalsePositiveInaccurateData => "false_positive_inaccurate_data",
            CloseClassification::Undetermined => "undetermined",
            CloseClassification::Duplicate => "duplicate",
            CloseClassification::NotApplicable => "not_applicable",
        }
    }

    /// How people read it.
    pub fn label(self) -> &'static str {
        match self {
            CloseClassification::TruePositiveSuspiciousActivity => {
                "True Positive – Suspicious Activity"
            }
            CloseClassification::BenignPositiveSuspiciousButExpected => {
                "Benign Positive – Suspicious but Expected"
            }
            CloseClassification::FalsePositiveIncorrectDetectionLogic => {
                "False Positive – Incorrect Detection Logic"
            }
            CloseClassification::FalsePositiveInaccurateData => "False Positive – Inaccurate Data",
            CloseClassification::Undetermined => "Undetermined",
            CloseClassification::Duplicate => "Duplicate",
            CloseClassification::NotApplicable => "Not Applicable",
        }
    }
}

impl FromStr for CloseClassification {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CloseClassification::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownValue::new("close classification", s))
    }
}

impl fmt::Display for CloseClassification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to an alert. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertUpdate {
    #[serde(default)]
    pub status: Option<AlertStatus>,
    #[serde(default)]
    pub close_classification: Option<CloseClassification>,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// `Some(None)` clears the analyst's verdict.
    #[serde(default)]
    pub malice_override: Option<Option<Malice>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleProblem>),
    #[error("no alert has id {0}")]
    AlertNotFound(Uuid),
    #[error("no indicator has id {0}")]
    IndicatorNotFound(Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn invalid(field: &str, message: &str) -> TriageError {
    TriageError::Invalid(vec![RuleProblem { field: field.into(), message: message.into() }])
}

/// Applies a change and logs one activity event per field that changed.
pub async fn update_alert(
    db: &PgPool,
    alert_id: Uuid,
    update: &AlertUpdate,
    actor: &str,
) -> Result<AlertRow, TriageError> {
    if update.severity == Some(Severity::Pending) {
        return Err(invalid("severity", "an alert's severity cannot be set back to Pending"));
    }
    if update.close_classification.is_some()
        && update.status.is_some_and(|status| status != AlertStatus::Closed)
    {
        return Err(invalid("close_classification", "only a closed alert has one"));
    }
    let mut tx = db.begin().await?;
    let change = Triage {
        status: update.status,
        close_classification: update.close_classification.map(|c| c.as_str().to_owned()),
        severity: update.severity,
        malice_override: update.malice_override,
        tags: update.tags.as_ref().map(|tags| {
            let mut tags: Vec<String> = tags.iter().map(|t| t.trim().to_owned()).collect();
            tags.retain(|t| !t.is_empty());
            tags.dedup();
            tags
        }),
    };
    if change.status == Some(AlertStatus::Closed) && change.close_classification.is_none() {
        // Closing an alert that was never classified needs a classification.
        let current = store::alert::get(&mut *tx, alert_id)
            .await?
            .ok_or(TriageError::AlertNotFound(alert_id))?;
        if current.close_classification.is_none() {
            return Err(invalid(
                "close_classification",
                "closing an alert requires one of: true_positive_suspicious_activity, \
                 benign_positive_suspicious_but_expected, false_positive_incorrect_detection_logic, \
                 false_positive_inaccurate_data, undetermined, duplicate, not_applicable",
            ));
        }
    }
    let (before, after) = store::alert::triage(&mut tx, alert_id, &change)
        .await?
        .ok_or(TriageError::AlertNotFound(alert_id))?;
    let record = |event: &'static str, details: serde_json::Value| (event, details);
    let mut events = Vec::new();
    if before.status != after.status || before.close_classification != after.close_classification {
        events.push(record(
            "alert.status_changed",
            serde_json::json!({"from": before.status, "to": after.status,
                               "close_classification": after.close_classification}),
        ));
    }
    if before.severity != after.severity {
        events.push(record(
            "alert.severity_changed",
            serde_json::json!({"from": before.severity, "to": after.severity}),
        ));
    }
    if before.malice_override != after.malice_override {
        events.push(record(
            "alert.malice_overridden",
            serde_json::json!({"from": before.malice_override, "to": after.malice_override}),
        ));
    }
    if before.tags != after.tags {
        events.push(record(
            "alert.tags_changed",
            serde_json::json!({"from": before.tags, "to": after.tags}),
        ));
    }
    for (event, details) in events {
        store::activity::record(&mut *tx, Some(alert_id), event, actor, &details).await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// A finding as an agent posts it.
#[derive(Debug, Clone, Deserialize)]
pub struct FindingInput {
    pub agent_name: String,
    pub summary: String,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub recommended_action: Option<String>,
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
}

pub async fn add_finding(
    db: &PgPool,
    alert_id: Uuid,
    input: &FindingInput,
    actor: &str,
) -> Result<FindingRow, TriageError> {
    let mut problems = Vec::new();
    if input.agent_name.trim().is_empty() {
        problems
            .push(RuleProblem { field: "agent_name".into(), message: "must not be blank".into() });
    }
    if input.summary.trim().is_empty() {
        problems.push(RuleProblem { field: "summary".into(), message: "must not be blank".into() });
    }
    if input.confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
        problems.push(RuleProblem {
            field: "confidence".into(),
            message: "must be between 0 and 1".into(),
        });
    }
    if !problems.is_empty() {
        return Err(TriageError::Invalid(problems));
    }
    let evidence = input.evidence.clone().unwrap_or_else(|| serde_json::json!({}));
    let finding = store::finding::NewFinding {
        agent_name: input.agent_name.trim(),
        summary: input.summary.trim(),
        confidence: input.confidence,
        recommended_action: input.recommended_action.as_deref().filter(|a| !a.trim().is_empty()),
        evidence: &evidence,
    };
    store::finding::insert(db, alert_id, &finding, actor)
        .await?
        .ok_or(TriageError::AlertNotFound(alert_id))
}

/// Sets (or, with `None`, clears) an analyst's verdict on an indicator; it sticks over the
/// providers' verdicts until cleared, and every linked alert's verdict follows. Returns the
/// linked alerts.
pub async fn set_indicator_malice(
    db: &PgPool,
    indicator_id: Uuid,
    malice: Option<Malice>,
    actor: &str,
) -> Result<Vec<Uuid>, TriageError> {
    store::alert::override_indicator_malice(db, indicator_id, malice, actor)
        .await?
        .ok_or(TriageError::IndicatorNotFound(indicator_id))
}

/// Queues the alert's enrichment again: its linked indicators are looked up anew where their
/// cached results have expired (with `fresh`, every provider is asked again whatever it
/// answered before), its context re-attached, and its agents notified only when
/// `notify_agents`.
pub async fn reenrich_alert(
    db: &PgPool,
    alert_id: Uuid,
    notify_agents: bool,
    fresh: bool,
    actor: &str,
) -> Result<i64, TriageError> {
    let mut tx = db.begin().await?;
    // The database's time, as results are stamped with it.
    let fresh_after = match fresh {
        true => Some(store::now(&mut *tx).await?),
        false => None,
    };
    let indicators = store::indicator::for_alert(&mut *tx, alert_id).await?;
    if store::alert::get(&mut *tx, alert_id).await?.is_none() {
        return Err(TriageError::AlertNotFound(alert_id));
    }
    let job = crate::job::EnrichAlert {
        alert_id,
        indicators: indicators
            .into_iter()
            .map(|row| crate::indicator::Indicator { kind: row.kind, value: row.value })
            .collect(),
        detection_rule: None,
        notify_agents,
        fresh_after,
    };
    let payload = serde_json::to_value(&job).expect("job payloads serialize");
    let job_id =
        store::job::enqueue(&mut *tx, crate::job::ENRICH_ALERT, &payload, Default::default())
            .await?;
    let details =
        serde_json::json!({"job_id": job_id, "notify_agents": notify_agents, "fresh": fresh});
    store::activity::record(
        &mut *tx,
        Some(alert_id),
        "alert.reenrichment_requested",
        actor,
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(job_id)
}

/// Links indicators an agent or analyst found to an alert (created if new, deduplicated by
/// type and value), and, when `enrich`, queues the alert's enrichment so they are looked up.
/// Returns the linked indicators' ids. Every value is checked first; a bad one names its index.
pub async fn add_indicators(
    db: &PgPool,
    alert_id: Uuid,
    indicators: &[(crate::alert::IndicatorType, String)],
    enrich: bool,
    actor: &str,
) -> Result<Vec<Uuid>, TriageError> {
    let mut cleaned = Vec::new();
    let mut problems = Vec::new();
    for (position, (kind, value)) in indicators.iter().enumerate() {
        match crate::indicator::clean(*kind, value) {
            Some(indicator) => cleaned.push(indicator),
            None => problems.push(RuleProblem {
                field: format!("indicators[{position}].value"),
                message: format!("{value:?} is not a valid {kind}"),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(TriageError::Invalid(problems));
    }
    if cleaned.is_empty() {
        return Err(invalid("indicators", "give at least one indicator"));
    }
    let mut tx = db.begin().await?;
    if store::alert::get(&mut *tx, alert_id).await?.is_none() {
        return Err(TriageError::AlertNotFound(alert_id));
    }
    let linked = store::indicator::upsert_and_link(&mut *tx, alert_id, &cleaned).await?;
    let details = serde_json::json!({
        "indicators": cleaned.iter().map(|i| serde_json::json!({"type": i.kind, "value": i.value})).collect::<Vec<_>>(),
        "enrich": enrich,
    });
    store::activity::record(&mut *tx, Some(alert_id), "alert.indicators_added", actor, &details)
        .await?;
    tx.commit().await?;
    if enrich {
        reenrich_alert(db, alert_id, false, false, actor).await?;
    }
    Ok(linked.into_iter().map(|(id, _)| id).collect())
}
