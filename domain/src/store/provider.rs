//! The `enrichment_provider` and `field_extraction` tables. Statement triggers notify
//! [`crate::notify::CONFIG_CHANGED`] on every write, so every process reloads providers.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A provider as stored. `definition` is the importable JSON; the columns beside it override it.
#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub enrichment_provider_id: Uuid,
    pub name: String,
    pub definition: serde_json::Value,
    pub base_url: Option<String>,
    pub concurrency_limit: Option<i32>,
    pub rate_limit_per_minute: Option<i32>,
    pub credentials: Option<Vec<u8>>,
    pub is_builtin: bool,
    pub is_active: bool,
}

/// A field extraction row, with its value type spelled as in definitions.
#[derive(Debug, Clone)]
pub struct ExtractionRow {
    pub enrichment_provider_id: Uuid,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    pub value_type: String,
    pub description: Option<String>,
    pub is_builtin: bool,
    pub is_active: bool,
}

/// Inserts a built-in provider, or gives an existing one the shipped definition, leaving the
/// columns people edit alone. Returns its id.
pub async fn upsert_builtin(
    db: impl PgExecutor<'_>,
    name: &str,
    definition: &serde_json::Value,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        r#"with saved as (
               insert into enrichment_provider (name, definition, is_builtin)
               values ($1, $2, true)
               on conflict on constraint enrichment_provider_name_key
               do update set definition = excluded.definition, updated_at = now()
               where enrichment_provider.is_builtin
                 and enrichment_provider.definition is distinct from excluded.definition
               returning enrichment_provider_id
           )
           select enrichment_provider_id as "id!" from saved
           union all
           select enrichment_provider_id from enrichment_provider
           where name = $1 and not exists (select 1 from saved)"#,
        name,
        definition,
    )
    .fetch_one(db)
    .await
}

/// Inserts a provider imported by a user. Returns `None` when the name is taken.
pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    definition: &serde_json::Value,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into enrichment_provider (name, definition) values ($1, $2)
           on conflict on constraint enrichment_provider_name_key do nothing
           returning enrichment_provider_id"#,
        name,
        definition,
    )
    .fetch_optional(db)
    .await
}

/// Replaces the extractions of one origin (built-in or user) for a provider with `rows`,
/// keeping the `is_active` choice of rows that stay.
pub async fn replace_extractions(
    db: &mut PgConnection,
    provider_id: Uuid,
    is_builtin: bool,
    rows: &[ExtractionRow],
) -> Result<(), sqlx::Error> {
    let kinds: Vec<&str> = rows.iter().map(|r| r.indicator_type.as_str()).collect();
    let paths: Vec<&str> = rows.iter().map(|r| r.source_path.as_str()).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.target_key.as_str()).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.value_type.as_str()).collect();
    let descriptions: Vec<Option<&str>> = rows.iter().map(|r| r.description.as_deref()).collect();
    sqlx::query!(
        "delete from field_extraction
         where enrichment_provider_id = $1 and is_builtin = $2
           and (indicator_type::text, target_key) not in
               (select * from unnest($3::text[], $4::text[]))",
        provider_id,
        is_builtin,
        &kinds as &[&str],
        &keys as &[&str],
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r#"insert into field_extraction (enrichment_provider_id, indicator_type, source_path,
                                         target_key, value_type, description, is_builtin)
           select $1, kind::indicator_type, source_path, target_key, value_type, description, $2
           from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                as given(kind, source_path, target_key, value_type, description)
           on conflict on constraint field_extraction_target_key
           do update set source_path = excluded.source_path, value_type = excluded.value_type,
                         description = excluded.description"#,
        provider_id,
        is_builtin,
        &kinds as &[&str],
        &paths as &[&str],
        &keys as &[&str],
        &types as &[&str],
        &descriptions as &[Option<&str>],
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Every provider, by name.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<ProviderRow>, sqlx::Error> {
    sqlx::query_as!(
        ProviderRow,
        "select enrichment_provider_id, name, definition, base_url, concurrency_limit,
                rate_limit_per_minute, credentials, is_builtin, is_active
         from enrichment_provider order by name",
    )
    .fetch_all(db)
    .await
}

/// Every active field extraction, by provider.
pub async fn list_extractions(db: impl PgExecutor<'_>) -> Result<Vec<ExtractionRow>, sqlx::Error> {
    sqlx::query_as!(
        ExtractionRow,
        r#"select enrichment_provider_id, indicator_type::text as "indicator_type!", source_path,
                  target_key, value_type, description, is_builtin, is_active
           from field_extraction
           order by enrichment_provider_id, indicator_type, target_key"#,
    )
    .fetch_all(db)
    .await
}

/// Stores sealed credentials (or removes them with `None`). Returns whether the provider exists.
pub async fn set_credentials(
    db: impl PgExecutor<'_>,
    name: &str,
    sealed: Option<&[u8]>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query_scalar!(
        r#"update enrichment_provider set credentials = $2, updated_at = now()
           where name = $1
           returning enrichment_provider_id"#,
        name,
        sealed,
    )
    .fetch_optional(db)
    .await?;
    Ok(updated.is_some())
}

/// A change to a stored provider. `None` leaves a value as it is; `Some(None)` clears an
/// override, so the definition's own value applies again.
#[derive(Debug, Clone, Default)]
pub struct ProviderChanges<'a> {
    pub definition: Option<&'a serde_json::Value>,
    pub base_url: Option<Option<&'a str>>,
    pub concurrency_limit: Option<Option<i32>>,
    pub rate_limit_per_minute: Option<Option<i32>>,
    pub is_active: Option<bool>,
}

/// Applies `changes` to the provider named `name`; `false` when there is none.
pub async fn update(
    db: impl PgExecutor<'_>,
    name: &str,
    changes: &ProviderChanges<'_>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query_scalar!(
        r#"update enrichment_provider
           set definition = coalesce($2, definition),
               base_url = case when $3 then $4 else base_url end,
               concurrency_limit = case when $5 then $6 else concurrency_limit end,
               rate_limit_per_minute = case when $7 then $8 else rate_limit_per_minute end,
               is_active = coalesce($9, is_active),
               updated_at = now()
           where name = $1
           returning enrichment_provider_id"#,
        name,
        changes.definition,
        changes.base_url.is_some(),
        changes.base_url.flatten(),
        changes.concurrency_limit.is_some(),
        changes.concurrency_limit.flatten(),
        changes.rate_limit_per_minute.is_some(),
        changes.rate_limit_per_minute.flatten(),
        changes.is_active,
    )
    .fetch_optional(db)
    .await?;
    Ok(updated.is_some())
}

/// Deletes a provider with its extractions and cached results; `false` when there is none.
pub async fn delete(db: impl PgExecutor<'_>, provider_id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!(
        "delete from enrichment_provider where enrichment_provider_id = $1",
        provider_id
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Every stored credential, locked for the caller's transaction (for key rotation).
pub async fn lock_all_credentials(
    db: &mut PgConnection,
) -> Result<Vec<(Uuid, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select enrichment_provider_id, credentials as "credentials!"
           from enrichment_provider where credentials is not null
           for update"#,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.enrichment_provider_id, row.credentials)).collect())
}

pub async fn replace_credentials(
    db: &mut PgConnection,
    provider_id: Uuid,
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update enrichment_provider set credentials = $2, updated_at = now()
         where enrichment_provider_id = $1",
        provider_id,
        sealed,
    )
    .execute(db)
    .await?;
    Ok(())
}
