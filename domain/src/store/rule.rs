//! The `detection_rule` table.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::Severity;

/// A detection rule as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleRow {
    pub detection_rule_id: Uuid,
    pub name: String,
    pub source_name: String,
    pub source_rule_id: String,
    pub severity: Option<Severity>,
    pub mitre_tactics: Vec<String>,
    pub mitre_techniques: Vec<String>,
    pub mitre_subtechniques: Vec<String>,
    pub data_sources: Vec<String>,
    pub documentation: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields a person writes.
#[derive(Debug, Clone)]
pub struct RuleFields {
    pub name: String,
    pub source_name: String,
    pub source_rule_id: String,
    pub severity: Option<Severity>,
    pub mitre_tactics: Vec<String>,
    pub mitre_techniques: Vec<String>,
    pub mitre_subtechniques: Vec<String>,
    pub data_sources: Vec<String>,
    pub documentation: Option<String>,
    pub is_active: bool,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    detection_rule_id: Uuid,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        RuleRow,
        r#"select detection_rule_id, name, source_name, source_rule_id,
                  severity as "severity: Severity", mitre_tactics, mitre_techniques,
                  mitre_subtechniques, data_sources, documentation, is_active, created_at,
                  updated_at
           from detection_rule where detection_rule_id = $1"#,
        detection_rule_id,
    )
    .fetch_optional(db)
    .await
}

/// Every rule, by name.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        RuleRow,
        r#"select detection_rule_id, name, source_name, source_rule_id,
                  severity as "severity: Severity", mitre_tactics, mitre_techniques,
                  mitre_subtechniques, data_sources, documentation, is_active, created_at,
                  updated_at
           from detection_rule order by lower(name), detection_rule_id"#,
    )
    .fetch_all(db)
    .await
}

/// Inserts a rule; `None` when its (source, source rule id) is taken.
pub async fn insert(
    db: impl PgExecutor<'_>,
    fields: &RuleFields,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        RuleRow,
        r#"insert into detection_rule (name, source_name, source_rule_id, severity, mitre_tactics,
                                       mitre_techniques, mitre_subtechniques, data_sources,
                                       documentation, is_active)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           on conflict on constraint detection_rule_source_key do nothing
           returning detection_rule_id, name, source_name, source_rule_id,
                     severity as "severity: Severity", mitre_tactics, mitre_techniques,
                     mitre_subtechniques, data_sources, documentation, is_active, created_at,
                     updated_at"#,
        fields.name,
        fields.source_name,
        fields.source_rule_id,
        fields.severity as Option<Severity>,
        &fields.mitre_tactics,
        &fields.mitre_techniques,
        &fields.mitre_subtechniques,
        &fields.data_sources,
        fields.documentation,
        fields.is_active,
    )
    .fetch_optional(db)
    .await
}

/// Replaces a rule's fields; its id, and so its alerts' links, stay. `Err` with a unique
/// violation when the new (source, source rule id) is another rule's.
pub async fn update(
    db: impl PgExecutor<'_>,
    detection_rule_id: Uuid,
    fields: &RuleFields,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as!(
        RuleRow,
        r#"update detection_rule
           set name = $2, source_name = $3, source_rule_id = $4, severity = $5,
               mitre_tactics = $6, mitre_techniques = $7, mitre_subtechniques = $8,
               data_sources = $9, documentation = $10, is_active = $11, updated_at = now()
           where detection_rule_id = $1
           returning detection_rule_id, name, source_name, source_rule_id,
                     severity as "severity: Severity", mitre_tactics, mitre_techniques,
                     mitre_subtechniques, data_sources, documentation, is_active, created_at,
                     updated_at"#,
        detection_rule_id,
        fields.name,
        fields.source_name,
        fields.source_rule_id,
        fields.severity as Option<Severity>,
        &fields.mitre_tactics,
        &fields.mitre_techniques,
        &fields.mitre_subtechniques,
        &fields.data_sources,
        fields.documentation,
        fields.is_active,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, detection_rule_id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted =
        sqlx::query!("delete from detection_rule where detection_rule_id = $1", detection_rule_id)
            .execute(db)
            .await?;
    Ok(deleted.rows_affected() > 0)
}
