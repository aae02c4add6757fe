//! Indicator mappings as ingest uses them: a process-wide snapshot of the active system and
//! user-defined mappings, reloaded whenever any process changes one.
//!
//! Ingest reads the snapshot without touching the database. Writers notify
//! [`crate::notify::CONFIG_CHANGED`] in the writing statement; each process's listener then
//! calls [`MappingCache::reload`], so a change is in force everywhere within moments.

use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use uuid::Uuid;

use crate::alert::Source;
use crate::normalize::FieldMapping;
use crate::store;

/// The active mappings, system ones first (pass 2), then user-defined ones (pass 3).
#[derive(Debug, Default)]
pub struct MappingCache {
    current: RwLock<Arc<Vec<FieldMapping>>>,
}

impl MappingCache {
    /// Loads the active mappings into a new cache.
    pub async fn load(db: &PgPool) -> Result<Self, sqlx::Error> {
        let cache = MappingCache::default();
        cache.reload(db).await?;
        Ok(cache)
    }

    /// Replaces the snapshot with what the database holds now.
    pub async fn reload(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let rows = store::mapping::list(db).await?;
        let active: Vec<FieldMapping> = rows
            .iter()
            .filter(|row| row.is_active)
            .filter_map(store::mapping::MappingRow::to_field_mapping)
            .collect();
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(active);
        Ok(())
    }

    /// The snapshot in force; cheap to call on every ingest.
    pub fn snapshot(&self) -> Arc<Vec<FieldMapping>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Why a user-defined mapping was refused.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("field_path must be a non-empty dot path such as `result.dest` or `Entities[].Url`")]
    InvalidPath,
    #[error("an identical mapping already exists")]
    Duplicate,
    #[error("mapping {0} does not exist or is built in")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds a user-defined mapping (pass 3), in force in every process once they reload; logged
/// as done by `actor`.
pub async fn create(
    db: &PgPool,
    mapping: &store::mapping::NewMapping<'_>,
    actor: &str,
) -> Result<Uuid, MappingError> {
    let mapping = checked(mapping)?;
    let mut tx = db.begin().await?;
    let id = store::mapping::create(&mut *tx, &mapping).await?.ok_or(MappingError::Duplicate)?;
    let details = audit_details(id, &mapping);
    store::activity::record(&mut *tx, None, "indicator_mapping.created", actor, &details).await?;
    tx.commit().await?;
    Ok(id)
}

/// The mapping with its dot path trimmed, when the path is one.
fn checked<'a>(
    mapping: &store::mapping::NewMapping<'a>,
) -> Result<store::mapping::NewMapping<'a>, MappingError> {
    let path = mapping.path.trim();
    if path.is_empty() || path.starts_with('.') || path.ends_with('.') || path.contains("..") {
        return Err(MappingError::InvalidPath);
    }
    Ok(store::mapping::NewMapping { path, ..mapping.clone() })
}

/// What the audit log says of a mapping created or changed.
fn audit_details(id: Uuid, mapping: &store::mapping::NewMapping<'_>) -> serde_json::Value {
    serde_json::json!({
        "indicator_mapping_id": id, "source": mapping.source.map(Source::as_str),
        "path": mapping.path, "indicator_type": mapping.indicator_type.as_str(),
    })
}

/// Replaces what a user-defined mapping extracts (system mappings can only be turned on or
/// off), in force in every process once they reload; logged as done by `actor`.
pub async fn update(
    db: &PgPool,
    indicator_mapping_id: Uuid,
    mapping: &store::mapping::NewMapping<'_>,
    actor: &str,
) -> Result<(), MappingError> {
    let mapping = checked(mapping)?;
    let mut tx = db.begin().await?;
    match store::mapping::update_custom(&mut *tx, indicator_mapping_id, &mapping).await {
        Ok(true) => {}
        Ok(false) => return Err(MappingError::NotFound(indicator_mapping_id)),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(MappingError::Duplicate);
        }
        Err(error) => return Err(error.into()),
    }
    let details = audit_details(indicator_mapping_id, &mapping);
    store::activity::record(&mut *tx, None, "indicator_mapping.updated", actor, &details).await?;
    tx.commit().await?;
    Ok(())
}

/// Turns a mapping (system or user-defined) on or off, logged as done by `actor`. Returns
/// whether it exists.
pub async fn set_active(
    db: &PgPool,
    indicator_mapping_id: Uuid,
    is_active: bool,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let found = store::mapping::set_active(&mut *tx, indicator_mapping_id, is_active).await?;
    if found {
        let details = serde_json::json!({ "indicator_mapping_id": indicator_mapping_id, "is_active": is_active });
        let event = "indicator_mapping.updated";
        store::activity::record(&mut *tx, None, event, actor, &details).await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// Removes a user-defined mapping, logged as done by `actor`.
pub async fn delete(
    db: &PgPool,
    indicator_mapping_id: Uuid,
    actor: &str,
) -> Result<(), MappingError> {
    let mut tx = db.begin().await?;
    if !store::mapping::delete_custom(&mut *tx, indicator_mapping_id).await? {
        return Err(MappingError::NotFound(indicator_mapping_id));
    }
    let details = serde_json::json!({ "indicator_mapping_id": indicator_mapping_id });
    store::activity::record(&mut *tx, None, "indicator_mapping.deleted", actor, &details).await?;
    tx.commit().await?;
    Ok(())
}
