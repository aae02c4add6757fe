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
use crate::store::provider::{self as provider_store, ExtractionRow, ProviderChanges, ProviderRow};

/// Why a provider operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] InvalidProvider),
    #[error("a provider named {0:?} already exists")]
    Duplicate(String),
    #[error("no provider is named {0:?}")]
    NotFound(String),
    #[error("{0:?} is a built-in provider: {1}")]
    Builtin(String, &'static str),
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
    actor: &str,
) -> Result<Uuid, RegistryError> {
    create(db, provider, extractions, None, actor).await
}

/// [`import`], with the provider's credentials (sealed with the key given) stored in the same
/// transaction: the provider is usable from its first lookup, or nothing is stored.
pub async fn create(
    db: &PgPool,
    provider: &Value,
    extractions: Option<&Value>,
    credentials: Option<(&SecretKey, &BTreeMap<String, String>)>,
    actor: &str,
) -> Result<Uuid, RegistryError> {
    let spec = ProviderSpec::from_json(provider)?;
    let extractions = match extractions {
        Some(json) => FieldExtraction::list_from_json(json, &spec)?,
        None => Vec::new(),
    };
    validate_extractions(&spec, &extractions)?;
    if let Some((_, fields)) = credentials {
        check_credential_fields(&spec, fields)?;
    }
    let definition = serde_json::to_value(&spec).expect("provider definitions serialize");
    let mut tx = db.begin().await?;
    let id = provider_store::insert(&mut *tx, &spec.provider_name, &definition)
        .await?
        .ok_or_else(|| RegistryError::Duplicate(spec.provider_name.clone()))?;
    let rows: Vec<ExtractionRow> =
        extractions.iter().map(|e| extraction_row(id, e, false)).collect();
    provider_store::replace_extractions(&mut tx, id, false, &rows).await?;
    let details = json!({ "provider": spec.provider_name, "field_extractions": rows.len() });
    audit(&mut tx, "enrichment_provider.imported", actor, &details).await?;
    if let Some((key, fields)) = credentials {
        store_credentials(&mut tx, key, &spec.provider_name, fields, actor).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// One configuration change in the audit log (`activity`, with no alert).
async fn audit(
    tx: &mut sqlx::PgConnection,
    event: &str,
    actor: &str,
    details: &Value,
) -> Result<(), sqlx::Error> {
    crate::store::activity::record(tx, None, event, actor, details).await
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

/// A change people make to a provider. `None` leaves a setting as it is; `Some(None)` clears
/// an override, so the definition's own value applies again.
#[derive(Debug, Clone, Default)]
pub struct ProviderUpdate {
    /// A whole new definition, in the importable format (user providers only; the name stays).
    pub definition: Option<Value>,
    pub base_url: Option<Option<String>>,
    pub concurrency_limit: Option<Option<u32>>,
    pub rate_limit_per_minute: Option<Option<u32>>,
    pub is_active: Option<bool>,
}

/// Changes a provider. The result, overrides applied, is validated as a whole before anything
/// is stored, and every problem is reported at once, by field. Every running worker and server
/// sees the change within a second (NOTIFY).
pub async fn update(
    db: &PgPool,
    name: &str,
    update: &ProviderUpdate,
    actor: &str,
) -> Result<StoredProvider, RegistryError> {
    let current = find(db, name).await?;
    if update.definition.is_some() && current.is_builtin {
        return Err(RegistryError::Builtin(
            name.to_owned(),
            "its definition ships with alertgraph; change its settings instead",
        ));
    }
    let mut merged = match &update.definition {
        Some(definition) => {
            let spec = ProviderSpec::from_json(definition)?;
            if spec.provider_name != name {
                let problem = Problem {
                    field: "provider_name".into(),
                    message: format!("must stay {name:?}; a provider cannot be renamed"),
                };
                return Err(InvalidProvider { problems: vec![problem] }.into());
            }
            spec
        }
        None => current.spec.clone(),
    };
    // Clearing the override (`Some(None)`) brings back the definition's own base URL, which
    // was validated with the definition.
    if let Some(Some(url)) = &update.base_url {
        merged.base_url = Some(url.clone());
    }
    if let Some(limit) = update.concurrency_limit {
        merged.concurrency_limit = limit;
    }
    if let Some(limit) = update.rate_limit_per_minute {
        merged.rate_limit_per_minute = limit;
    }
    // Validate the provider as it will be used, extractions included.
    let merged = ProviderSpec::from_json(
        &serde_json::to_value(&merged).expect("provider definitions serialize"),
    )?;
    validate_extractions(&merged, &current.extractions)?;

    let definition = update
        .definition
        .as_ref()
        .map(|_| serde_json::to_value(&merged).expect("provider definitions serialize"));
    let changes = ProviderChanges {
        definition: definition.as_ref(),
        base_url: update.base_url.as_ref().map(|url| url.as_deref()),
        concurrency_limit: update.concurrency_limit.map(|limit| limit.map(|l| l as i32)),
        rate_limit_per_minute: update.rate_limit_per_minute.map(|limit| limit.map(|l| l as i32)),
        is_active: update.is_active,
    };
    let mut tx = db.begin().await?;
    if !provider_store::update(&mut *tx, name, &changes).await? {
        return Err(RegistryError::NotFound(name.to_owned()));
    }
    let details = json!({
        "provider": name,
        "definition_replaced": update.definition.is_some(),
        "base_url": update.base_url,
        "concurrency_limit": update.concurrency_limit,
        "rate_limit_per_minute": update.rate_limit_per_minute,
        "is_active": update.is_active,
    });
    audit(&mut tx, "enrichment_provider.updated", actor, &details).await?;
    tx.commit().await?;
    find(db, name).await
}

/// Deletes a user provider with its extractions and cached results. Built-in providers are
/// deactivated instead: they are seeded again at every start.
pub async fn delete(db: &PgPool, name: &str, actor: &str) -> Result<(), RegistryError> {
    let provider = find(db, name).await?;
    if provider.is_builtin {
        return Err(RegistryError::Builtin(
            name.to_owned(),
            "it cannot be deleted; deactivate it instead",
        ));
    }
    let mut tx = db.begin().await?;
    if !provider_store::delete(&mut *tx, provider.enrichment_provider_id).await? {
        return Err(RegistryError::NotFound(name.to_owned()));
    }
    audit(&mut tx, "enrichment_provider.deleted", actor, &json!({ "provider": name })).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces a provider's user-defined field extractions with `extractions` (a list in the
/// format of `greynoise.field_extractions.json`), in one go. A built-in provider keeps its
/// shipped extractions; a user extraction may not reuse one of their target keys.
pub async fn set_extractions(
    db: &PgPool,
    name: &str,
    extractions: &Value,
    actor: &str,
) -> Result<usize, RegistryError> {
    let provider = find(db, name).await?;
    let given = FieldExtraction::list_from_json(extractions, &provider.spec)?;
    validate_extractions(&provider.spec, &given)?;
    let mut tx = db.begin().await?;
    let shipped: Vec<(String, String)> = if provider.is_builtin {
        provider_store::list_extractions(&mut *tx)
            .await?
            .into_iter()
            .filter(|row| row.enrichment_provider_id == provider.enrichment_provider_id)
            .filter(|row| row.is_builtin)
            .map(|row| (row.indicator_type, row.target_key))
            .collect()
    } else {
        Vec::new()
    };
    let problems: Vec<Problem> = given
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            shipped
                .iter()
                .any(|(kind, key)| kind == e.indicator_type.as_str() && *key == e.target_key)
        })
        .map(|(position, e)| Problem {
            field: format!("field_extractions[{position}].target_key"),
            message: format!(
                "{:?} is a built-in extraction of {name:?} for {}; choose another key",
                e.target_key,
                e.indicator_type.as_str()
            ),
        })
        .collect();
    if !problems.is_empty() {
        return Err(InvalidProvider { problems }.into());
    }
    let rows: Vec<ExtractionRow> =
        given.iter().map(|e| extraction_row(provider.enrichment_provider_id, e, false)).collect();
    provider_store::replace_extractions(&mut tx, provider.enrichment_provider_id, false, &rows)
        .await?;
    let details = json!({ "provider": name, "field_extractions": rows.len() });
    audit(&mut tx, "field_extractions.replaced", actor, &details).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The stored provider named `name`.
pub async fn find(db: &PgPool, name: &str) -> Result<StoredProvider, RegistryError> {
    load(db)
        .await?
        .into_iter()
        .find(|provider| provider.spec.provider_name == name)
        .ok_or_else(|| RegistryError::NotFound(name.to_owned()))
}

/// Stores a provider's credentials, sealed. Field names must be ones its definition uses.
pub async fn set_credentials(
    db: &PgPool,
    key: &SecretKey,
    name: &str,
    fields: &BTreeMap<String, String>,
    actor: &str,
) -> Result<(), RegistryError> {
    let provider = find(db, name).await?;
    check_credential_fields(&provider.spec, fields)?;
    let mut tx = db.begin().await?;
    store_credentials(&mut tx, key, name, fields, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// Refuses credential fields the provider's definition does not use.
fn check_credential_fields(
    spec: &ProviderSpec,
    fields: &BTreeMap<String, String>,
) -> Result<(), RegistryError> {
    let expected = spec.required_credentials();
    match fields.keys().find(|field| !expected.contains(*field)) {
        Some(field) => Err(RegistryError::UnknownCredential {
            provider: spec.provider_name.clone(),
            field: field.clone(),
            expected: expected.into_iter().collect(),
        }),
        None => Ok(()),
    }
}

/// Seals and stores a provider's credentials, and logs their field names (never a value).
async fn store_credentials(
    tx: &mut sqlx::PgConnection,
    key: &SecretKey,
    name: &str,
    fields: &BTreeMap<String, String>,
    actor: &str,
) -> Result<(), RegistryError> {
    let sealed = key.seal(&serde_json::to_vec(fields).expect("credentials serialize"));
    provider_store::set_credentials(&mut *tx, name, Some(&sealed)).await?;
    let details = json!({ "provider": name, "fields": fields.keys().collect::<Vec<_>>() });
    audit(tx, "enrichment_provider.credentials_set", actor, &details).await?;
    Ok(())
}

/// Re-encrypts every stored secret (provider credentials, agents' signing secrets and auth
/// headers) under `new`, in one transaction: either all of them move to
/// the new key or none does. Returns how many were re-encrypted.
pub async fn rotate_secrets(
    db: &PgPool,
    old: &SecretKey,
    new: &SecretKey,
    actor: &str,
) -> Result<usize, RegistryError> {
    let mut tx = db.begin().await?;
    let sealed = provider_store::lock_all_credentials(&mut tx).await?;
    for (provider_id, value) in &sealed {
        let plaintext = old.open(value)?;
        provider_store::replace_credentials(&mut tx, *provider_id, &new.seal(&plaintext)).await?;
    }
    // Agents' signing secrets and auth headers.
    let agents = crate::store::agent::lock_all_secrets(&mut tx).await?;
    let mut rotated = sealed.len();
    for (agent_id, signing_secret, header) in &agents {
        let signing_secret = new.seal(&old.open(signing_secret)?);
        let header = match header {
            Some(value) => Some(new.seal(&old.open(value)?)),
            None => None,
        };
        crate::store::agent::replace_secrets(
            &mut *tx,
            *agent_id,
            &signing_secret,
            header.as_deref(),
        )
        .await?;
        rotated += 1 + usize::from(header.is_some());
    }
    audit(&mut tx, "secrets.rotated", actor, &json!({ "re_encrypted": rotated })).await?;
    tx.commit().await?;
    Ok(rotated)
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
