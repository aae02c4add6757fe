//! The `context_document` table, its version history, and the documents attached to alerts.
//! A statement trigger notifies [`crate::notify::CONFIG_CHANGED`] on every write, so every
//! worker reloads the documents it matches against.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::context::DocumentType;

/// A context document as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocumentRow {
    pub context_document_id: Uuid,
    pub title: String,
    pub document_type: DocumentType,
    pub content: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub is_global: bool,
    pub targeting_rules: serde_json::Value,
    pub is_active: bool,
    pub version: i32,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields a person writes.
#[derive(Debug, Clone)]
pub struct DocumentFields {
    pub title: String,
    pub document_type: DocumentType,
    pub content: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub is_global: bool,
    pub targeting_rules: serde_json::Value,
    pub is_active: bool,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    fields: &DocumentFields,
    actor: &str,
) -> Result<DocumentRow, sqlx::Error> {
    sqlx::query_as!(
        DocumentRow,
        r#"insert into context_document (title, document_type, content, description, tags,
                                         is_global, targeting_rules, is_active, created_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           returning context_document_id, title, document_type as "document_type: DocumentType",
                     content, description, tags, is_global, targeting_rules, is_active, version,
                     created_by, created_at, updated_at"#,
        fields.title,
        fields.document_type as DocumentType,
        fields.content,
        fields.description,
        &fields.tags,
        fields.is_global,
        fields.targeting_rules,
        fields.is_active,
        actor,
    )
    .fetch_one(db)
    .await
}

/// Replaces a document's fields. When anything but `is_active` changes, the version before the
/// change is copied into the history and the version number goes up. `None` when there is no
/// such document.
pub async fn update(
    db: &mut PgConnection,
    document_id: Uuid,
    fields: &DocumentFields,
    actor: &str,
) -> Result<Option<DocumentRow>, sqlx::Error> {
    let archived = sqlx::query_scalar!(
        r#"insert into context_document_version (context_document_id, version, title,
                   document_type, content, description, tags, is_global, targeting_rules,
                   changed_by)
           select context_document_id, version, title, document_type, content, description,
                  tags, is_global, targeting_rules, $9
           from context_document
           where context_document_id = $1
             and (title, document_type, content, coalesce(description, ''), tags, is_global,
                  targeting_rules)
                 is distinct from ($2, $3, $4, coalesce($5, ''), $6, $7, $8)
           returning version"#,
        document_id,
        fields.title,
        fields.document_type as DocumentType,
        fields.content,
        fields.description,
        &fields.tags,
        fields.is_global,
        fields.targeting_rules,
        actor,
    )
    .fetch_optional(&mut *db)
    .await?;
    sqlx::query_as!(
        DocumentRow,
        r#"update context_document
           set title = $2, document_type = $3, content = $4, description = $5, tags = $6,
               is_global = $7, targeting_rules = $8, is_active = $9,
               version = version + $10, updated_at = now()
           where context_document_id = $1
           returning context_document_id, title, document_type as "document_type: DocumentType",
                     content, description, tags, is_global, targeting_rules, is_active, version,
                     created_by, created_at, updated_at"#,
        document_id,
        fields.title,
        fields.document_type as DocumentType,
        fields.content,
        fields.description,
        &fields.tags,
        fields.is_global,
        fields.targeting_rules,
        fields.is_active,
        i32::from(archived.is_some()),
    )
    .fetch_optional(&mut *db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, document_id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted =
        sqlx::query!("delete from context_document where context_document_id = $1", document_id)
            .execute(db)
            .await?;
    Ok(deleted.rows_affected() > 0)
}

pub async fn get(
    db: impl PgExecutor<'_>,
    document_id: Uuid,
) -> Result<Option<DocumentRow>, sqlx::Error> {
    sqlx::query_as!(
        DocumentRow,
        r#"select context_document_id, title, document_type as "document_type: DocumentType",
                  content, description, tags, is_global, targeting_rules, is_active, version,
                  created_by, created_at, updated_at
           from context_document where context_document_id = $1"#,
        document_id,
    )
    .fetch_optional(db)
    .await
}

/// Every document, newest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<DocumentRow>, sqlx::Error> {
    sqlx::query_as!(
        DocumentRow,
        r#"select context_document_id, title, document_type as "document_type: DocumentType",
                  content, description, tags, is_global, targeting_rules, is_active, version,
                  created_by, created_at, updated_at
           from context_document order by created_at desc, context_document_id"#,
    )
    .fetch_all(db)
    .await
}

/// A past version of a document.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionRow {
    pub version: i32,
    pub title: String,
    pub document_type: DocumentType,
    pub content: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub is_global: bool,
    pub targeting_rules: serde_json::Value,
    pub changed_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A document's earlier versions, newest first (the current one is the document itself).
pub async fn versions(
    db: impl PgExecutor<'_>,
    document_id: Uuid,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as!(
        VersionRow,
        r#"select version, title, document_type as "document_type: DocumentType", content,
                  description, tags, is_global, targeting_rules, changed_by, created_at
           from context_document_version where context_document_id = $1
           order by version desc"#,
        document_id,
    )
    .fetch_all(db)
    .await
}

/// Attaches documents to an alert at the given versions (a re-run updates the version).
pub async fn attach(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    documents: &[(Uuid, i32)],
) -> Result<(), sqlx::Error> {
    if documents.is_empty() {
        return Ok(());
    }
    let (ids, versions): (Vec<Uuid>, Vec<i32>) = documents.iter().copied().unzip();
    sqlx::query!(
        "insert into alert_context_document (alert_id, context_document_id, version)
         select $1, id, version from unnest($2::uuid[], $3::int[]) as given(id, version)
         -- A document deleted since the snapshot was taken is skipped.
         where exists (select 1 from context_document d where d.context_document_id = given.id)
         on conflict on constraint alert_context_document_pkey
         do update set version = excluded.version",
        alert_id,
        &ids,
        &versions,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The documents attached to an alert, in attachment order.
pub async fn for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Vec<DocumentRow>, sqlx::Error> {
    sqlx::query_as!(
        DocumentRow,
        r#"select d.context_document_id, d.title,
                  d.document_type as "document_type: DocumentType", d.content, d.description,
                  d.tags, d.is_global, d.targeting_rules, d.is_active, d.version, d.created_by,
                  d.created_at, d.updated_at
           from alert_context_document a join context_document d using (context_document_id)
           where a.alert_id = $1 order by a.attached_at, d.title"#,
        alert_id,
    )
    .fetch_all(db)
    .await
}
