//! The stored providers: built-ins seeded and upgraded at start-up, user imports in the same
//! JSON format, the settings people edit, and credentials sealed with the [`SecretKey`].
//!
//! Credentials come from the database first and, for any field not stored there, from the
//! environment variable `<PROVIDER>_<FIELD>` (`VIRUSTOTAL_API_KEY`, `OKTA_DOMAIN`, …). A
//! provider whose required fields are not all available is inactive, never an error.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    AuthValues, FieldExtraction, InvalidProvider, Problem, ProviderSpec, validate_extractions,
};
use crate::secret::{Secret, SecretError, SecretKey};
use crate::store::provider::{self as provider_store, ExtractionRow, ProviderRow};

/// Why a provider operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] InvalidProvider),
    #[error("a provider named {0:?} already exists")]
    Duplicate(String),
    #[error("no provider is named {0:?}")]
    NotFound(String),
    #[error("provider {provider:?} takes no credential {field:?}; it uses {expected:?}")]
    UnknownCredential { provider: String, field: String, expected: Vec<String> },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A provider as the enrichment stage uses it: the definition with people's edits applied.
#[derive(Debug, Clone)]
pub struct StoredProvider {
    pub enrichment_provider_id: Uuid,
    pub spec: ProviderSpec,
    pub extractions: Vec<FieldExtraction>,
    pub is_builtin: bool,
    pub is_active: bool,
    sealed_credentials: Option<Vec<u8>>,
}

impl StoredProvider {
    pub fn has_stored_credentials(&self) -> bool {
        self.sealed_credentials.is_some()
    }

    /// The credentials this provider needs, from the database or else from `env`; `None`
    /// when any required field is missing (the provider is then inactive).
    pub fn credentials(
        &self,
        key: &SecretKey,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AuthValues>, SecretError> {
        let stored: BTreeMap<String, String> = match &self.sealed_credentials {
            Some(sealed) => {
                serde_json::from_slice(&key.open(sealed)?).map_err(|_| SecretError::Corrupt)?
            }
            None => BTreeMap::new(),
        };
        let mut fields = Vec::new();
        for field in self.spec.required_credentials() {
            let value = stored
                .get(&field)
                .cloned()
                .or_else(|| env(&env_var(&self.spec.provider_name, &field)));
            match value {
                Some(value) if !value.is_empty() => fields.push((field, Secret::new(value))),
                _ => return Ok(None),
            }
        }
        Ok(Some(fields.into_iter().collect()))
    }
}

/// The environment variable that supplies `field` of `provider` when none is stored.
pub fn env_var(provider: &str, field: &str) -> String {
    format!("{provider}_{field}").to_ascii_uppercase()
}

/// Inserts the built-in providers that are missing and gives existing ones the shipped
/// definition and extractions; people's settings and credentials are kept.
pub async fn seed_builtin(db: &PgPool) -> Result<(), sqlx::Error> {
    for (spec, extractions) in super::builtin() {
        let definition = serde_json::to_value(&spec).expect("provider definitions serialize");
        let mut tx = db.begin().await?;
        let id = provider_store::upsert_builtin(&mut *tx, &spec.provider_name, &definition).await?;
        let rows: Vec<ExtractionRow> =
            extractions.iter().map(|e| extraction_row(id, e, true)).collect();
        provider_store::replace_extractions(&mut tx, id, true, &rows).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Imports a provider in the importable JSON format, with its field extractions (the format of
/// `greynoise.field_extractions.json`). Every problem is reported at once, by field.
pub async fn import(
    db: &PgPool,
    provider: &Value,
    extractions: Option<&Value>,
) -> Result<Uuid, RegistryError> {
    let spec = ProviderSpec::from_json(provider)?;
    let extractions = match extractions {
        Some(json) => FieldExtraction::list_from_json(json, &spec)?,
        None => Vec::new(),
    };
    validate_extractions(&spec, &extractions)?;
    let definition = serde_json::to_value(&spec).expect("provider definitions serialize");
    let mut tx = db.begin().await?;
    let id = provider_store::insert(&mut *tx, &spec.provider_name, &definition)
        .await?
        .ok_or_else(|| RegistryError::Duplicate(spec.provider_name.clone()))?;
    let rows: Vec<ExtractionRow> =
        extractions.iter().map(|e| extraction_row(id, e, false)).collect();
    provider_store::replace_extractions(&mut tx, id, false, &rows).await?;
    tx.commit().await?;
    Ok(id)
}

/// Every provider with its active extractions and people's edits applied.
pub async fn load(db: &PgPool) -> Result<Vec<StoredProvider>, RegistryError> {
    let rows = provider_store::list(db).await?;
    let extraction_rows = provider_store::list_extractions(db).await?;
    rows.into_iter()
        .map(|row| {
            let extractions = extraction_rows
                .iter()
                .filter(|e| e.enrichment_provider_id == row.enrichment_provider_id && e.is_active)
                .map(|e| field_extraction(&row.name, e))
                .collect::<Result<Vec<_>, _>>()?;
            stored_provider(row, extractions)
        })
        .collect()
}

/// Stores a provider's credentials, sealed. Field names must be ones its definition uses.
pub async fn set_credentials(
    db: &PgPool,
    key: &SecretKey,
    name: &str,
    fields: &BTreeMap<String, String>,
) -> Result<(), RegistryError> {
    let provider = load(db)
        .await?
        .into_iter()
        .find(|provider| provider.spec.provider_name == name)
        .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
    let expected = provider.spec.required_credentials();
    if let Some(field) = fields.keys().find(|field| !expected.contains(*field)) {
        return Err(RegistryError::UnknownCredential {
            provider: name.to_owned(),
            field: field.clone(),
            expected: expected.into_iter().collect(),
        });
    }
    let sealed = key.seal(&serde_json::to_vec(fields).expect("credentials serialize"));
    provider_store::set_credentials(db, name, Some(&sealed)).await?;
    Ok(())
}

/// Re-encrypts every stored secret under `new`, in one transaction: either all of them move to
/// the new key or none does. Returns how many were re-encrypted.
pub async fn rotate_secrets(
    db: &PgPool,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<usize, RegistryError> {
    let mut tx = db.begin().await?;
    let sealed = provider_store::lock_all_credentials(&mut tx).await?;
    for (provider_id, value) in &sealed {
        let plaintext = old.open(value)?;
        provider_store::replace_credentials(&mut tx, *provider_id, &new.seal(&plaintext)).await?;
    }
    tx.commit().await?;
    Ok(sealed.len())
}

fn stored_provider(
    row: ProviderRow,
    extractions: Vec<FieldExtraction>,
) -> Result<StoredProvider, RegistryError> {
    let mut spec = ProviderSpec::from_json(&row.definition)?;
    if let Some(base_url) = row.base_url {
        spec.base_url = Some(base_url);
    }
    if let Some(limit) = row.concurrency_limit {
        spec.concurrency_limit = u32::try_from(limit).ok();
    }
    if let Some(limit) = row.rate_limit_per_minute {
        spec.rate_limit_per_minute = u32::try_from(limit).ok();
    }
    Ok(StoredProvider {
        enrichment_provider_id: row.enrichment_provider_id,
        spec,
        extractions,
        is_builtin: row.is_builtin,
        is_active: row.is_active,
        sealed_credentials: row.credentials,
    })
}

fn extraction_row(
    provider_id: Uuid,
    extraction: &FieldExtraction,
    is_builtin: bool,
) -> ExtractionRow {
    let value_type = serde_json::to_value(extraction.value_type).expect("value types serialize");
    ExtractionRow {
        enrichment_provider_id: provider_id,
        indicator_type: extraction.indicator_type.as_str().to_owned(),
        source_path: extraction.source_path.clone(),
        target_key: extraction.target_key.clone(),
        value_type: value_type.as_str().unwrap_or("any").to_owned(),
        description: Some(extraction.description.clone()).filter(|d| !d.is_empty()),
        is_builtin,
        is_active: true,
    }
}

fn field_extraction(provider: &str, row: &ExtractionRow) -> Result<FieldExtraction, RegistryError> {
    let json = json!({
        "provider_name": provider,
        "indicator_type": row.indicator_type,
        "source_path": row.source_path,
        "target_key": row.target_key,
        "value_type": row.value_type,
        "description": row.description.clone().unwrap_or_default(),
    });
    serde_json::from_value(json).map_err(|error| {
        let problem = Problem { field: "field_extractions".into(), message: error.to_string() };
        RegistryError::Invalid(InvalidProvider { problems: vec![problem] })
    })
}
