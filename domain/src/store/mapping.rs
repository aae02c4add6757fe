//! The `indicator_mapping` table: passes 2 (system) and 3 (user-defined) of indicator
//! extraction.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::alert::{IndicatorType, Source};
use crate::normalize::{FieldMapping, MappingTarget};

/// A mapping row as stored.
#[derive(Debug, Clone)]
pub struct MappingRow {
    pub indicator_mapping_id: Uuid,
    pub source_name: Option<String>,
    pub extract_from: String,
    pub field_path: String,
    pub indicator_type: IndicatorType,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
}

impl MappingRow {
    /// The row as extraction uses it. Rows are checked on write, so a row that does not parse
    /// (edited by hand in SQL) is skipped rather than failing every ingest.
    pub fn to_field_mapping(&self) -> Option<FieldMapping> {
        let source = match &self.source_name {
            Some(name) => Some(name.parse::<Source>().ok()?),
            None => None,
        };
        let target = match self.extract_from.as_str() {
            "raw" => MappingTarget::Raw,
            "normalized" => MappingTarget::Normalized,
            _ => return None,
        };
        Some(FieldMapping {
            source,
            target,
            path: self.field_path.clone(),
            indicator_type: self.indicator_type,
        })
    }
}

/// Inserts the built-in mappings that are not there yet. Existing rows, including ones a user
/// deactivated, are left as they are.
pub async fn seed_system(
    db: impl PgExecutor<'_>,
    mappings: &[(Source, &str, IndicatorType)],
) -> Result<(), sqlx::Error> {
    let sources: Vec<String> = mappings.iter().map(|m| m.0.as_str().to_owned()).collect();
    let paths: Vec<String> = mappings.iter().map(|m| m.1.to_owned()).collect();
    let kinds: Vec<String> = mappings.iter().map(|m| m.2.as_str().to_owned()).collect();
    sqlx::query!(
        "insert into indicator_mapping (source_name, extract_from, field_path, indicator_type,
                                        is_system, description)
         select source_name, 'raw', field_path, kind::indicator_type, true,
                'Built-in mapping for ' || source_name
         from unnest($1::text[], $2::text[], $3::text[]) as m(source_name, field_path, kind)
         on conflict do nothing",
        &sources,
        &paths,
        &kinds,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Every mapping, system ones first, in a stable order.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<MappingRow>, sqlx::Error> {
    sqlx::query_as!(
        MappingRow,
        r#"select indicator_mapping_id, source_name, extract_from, field_path,
                  indicator_type as "indicator_type: IndicatorType", is_system, is_active,
                  description
           from indicator_mapping
           order by is_system desc, source_name nulls first, field_path, indicator_type"#,
    )
    .fetch_all(db)
    .await
}

/// A user-defined mapping to create.
#[derive(Debug, Clone)]
pub struct NewMapping<'a> {
    pub source: Option<Source>,
    pub target: MappingTarget,
    pub path: &'a str,
    pub indicator_type: IndicatorType,
    pub description: Option<&'a str>,
}

/// Inserts a user-defined mapping (the `indicator_mapping_notify` trigger wakes every process
/// to reload mappings). Returns `None` when the same mapping already exists.
pub async fn create(
    db: impl PgExecutor<'_>,
    mapping: &NewMapping<'_>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into indicator_mapping (source_name, extract_from, field_path,
                                          indicator_type, description)
           values ($1, $2, $3, $4::text::indicator_type, $5)
           on conflict do nothing
           returning indicator_mapping_id"#,
        mapping.source.map(Source::as_str),
        extract_from(mapping.target),
        mapping.path,
        mapping.indicator_type.as_str(),
        mapping.description,
    )
    .fetch_optional(db)
    .await
}

/// Replaces a user-defined mapping's source, target, path, type and description. Returns
/// whether such a mapping exists; one identical to another fails as a unique violation.
pub async fn update_custom(
    db: impl PgExecutor<'_>,
    indicator_mapping_id: Uuid,
    mapping: &NewMapping<'_>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query_scalar!(
        r#"update indicator_mapping
           set source_name = $2, extract_from = $3, field_path = $4,
               indicator_type = $5::text::indicator_type, description = $6, updated_at = now()
           where indicator_mapping_id = $1 and not is_system
           returning indicator_mapping_id"#,
        indicator_mapping_id,
        mapping.source.map(Source::as_str),
        extract_from(mapping.target),
        mapping.path,
        mapping.indicator_type.as_str(),
        mapping.description,
    )
    .fetch_optional(db)
    .await?;
    Ok(updated.is_some())
}

fn extract_from(target: MappingTarget) -> &'static str {
    match target {
        MappingTarget::Raw => "raw",
        MappingTarget::Normalized => "normalized",
    }
}

/// Turns a mapping (system or user-defined) on or off. Returns whether it exists.
pub async fn set_active(
    db: impl PgExecutor<'_>,
    indicator_mapping_id: Uuid,
    is_active: bool,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query_scalar!(
        r#"update indicator_mapping set is_active = $2, updated_at = now()
           where indicator_mapping_id = $1
           returning indicator_mapping_id"#,
        indicator_mapping_id,
        is_active,
    )
    .fetch_optional(db)
    .await?;
    Ok(updated.is_some())
}

/// Deletes a user-defined mapping. System mappings cannot be deleted, only deactivated.
pub async fn delete_custom(
    db: impl PgExecutor<'_>,
    indicator_mapping_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query_scalar!(
        r#"delete from indicator_mapping
           where indicator_mapping_id = $1 and not is_system
           returning indicator_mapping_id"#,
        indicator_mapping_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(deleted.is_some())
}
