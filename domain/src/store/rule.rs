//! The `detection_rule` table.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::Severity;
use crate::normalize::RuleRef;

/// Returns the id of the rule keyed by (source name, source rule id), creating it from `seed` the
/// first time. An existing rule is never overwritten: people may have edited it since.
pub async fn ensure(
    db: impl PgExecutor<'_>,
    source_name: &str,
    seed: &RuleRef,
) -> Result<Uuid, sqlx::Error> {
    // `do update` with an unchanged value, rather than `do nothing`, so that `returning` also
    // yields the id of a rule that already exists.
    sqlx::query_scalar!(
        r#"insert into detection_rule (name, source_name, source_rule_id, severity, mitre_tactics,
                                       mitre_techniques, mitre_subtechniques)
           values ($1, $2, $3, $4::text::severity, $5, $6, $7)
           on conflict on constraint detection_rule_source_key
           do update set source_rule_id = excluded.source_rule_id
           returning detection_rule_id"#,
        seed.name,
        source_name,
        seed.source_rule_id,
        seed.severity.map(Severity::as_str),
        &seed.mitre_tactics,
        &seed.mitre_techniques,
        &seed.mitre_subtechniques,
    )
    .fetch_one(db)
    .await
}

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
