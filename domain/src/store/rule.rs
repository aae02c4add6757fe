//! The `detection_rule` table.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::Severity;

/// A detection rule as stored.
#[derive(Debug, Clone)]
pub struct RuleRow {
    pub detection_rule_id: Uuid,
    pub name: String,
    pub source_name: String,
    pub source_rule_id: String,
    pub severity: Option<Severity>,
    pub mitre_tactics: Vec<String>,
    pub mitre_techniques: Vec<String>,
    pub mitre_subtechniques: Vec<String>,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    detection_rule_id: Uuid,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        RuleRow,
        r#"select detection_rule_id, name, source_name, source_rule_id,
                  severity as "severity: Severity", mitre_tactics, mitre_techniques,
                  mitre_subtechniques
           from detection_rule where detection_rule_id = $1"#,
        detection_rule_id,
    )
    .fetch_optional(db)
    .await
}
