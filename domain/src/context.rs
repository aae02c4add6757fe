//! Context documents (SPEC §4): runbooks, IR plans, SOPs, playbooks and detection guides in
//! markdown, attached to the alerts their targeting rules match (or to every alert, when
//! global). Every change of a document keeps the previous version.
//!
//! Matching runs in memory on each worker's snapshot of the active documents
//! ([`crate::dispatch::Dispatcher`]), reloaded whenever a document changes (NOTIFY): attaching
//! documents to an alert never reads every document from the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::alert::{UnknownValue, labels};
use crate::store::document::{self as document_store, DocumentFields, DocumentRow, VersionRow};
use crate::targeting::{RuleProblem, TargetingRules};

labels! {
    /// What kind of knowledge a document holds.
    DocumentType as "document_type", "document type" {
        Runbook = "runbook",
        IrPlan = "ir_plan",
        Sop = "sop",
        Playbook = "playbook",
        DetectionGuide = "detection_guide",
        Other = "other",
    }
}

/// A document as people write it.
#[derive(Debug, Clone, Deserialize)]
pub struct DocumentInput {
    pub title: String,
    #[serde(default = "other")]
    pub document_type: DocumentType,
    pub content: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub is_global: bool,
    #[serde(default)]
    pub targeting_rules: Option<serde_json::Value>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn other() -> DocumentType {
    DocumentType::Other
}

fn yes() -> bool {
    true
}

/// Why a document was refused: every problem, each naming its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid context document: {}", describe(.problems))]
pub struct InvalidDocument {
    pub problems: Vec<RuleProblem>,
}

fn describe(problems: &[RuleProblem]) -> String {
    problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(transparent)]
    Invalid(#[from] InvalidDocument),
    #[error("no context document has id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl DocumentInput {
    /// Checks the input and returns the fields to store, the targeting rules canonicalized.
    pub fn validate(&self) -> Result<DocumentFields, InvalidDocument> {
        let mut problems = Vec::new();
        let title = self.title.trim();
        if title.is_empty() {
            problems.push(problem("title", "must not be blank"));
        } else if title.chars().count() > 500 {
            problems.push(problem("title", "must be at most 500 characters"));
        }
        if self.content.trim().is_empty() {
            problems.push(problem("content", "must not be blank"));
        }
        let rules = match &self.targeting_rules {
            None | Some(serde_json::Value::Null) => Some(TargetingRules::default()),
            Some(json) => match TargetingRules::from_json(json) {
                Ok(rules) => Some(rules),
                Err(invalid) => {
                    problems.extend(invalid.problems.into_iter().map(|p| RuleProblem {
                        field: crate::targeting::nested("targeting_rules", &p.field),
                        message: p.message,
                    }));
                    None
                }
            },
        };
        let mut tags: Vec<String> =
            self.tags.iter().map(|tag| tag.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        tags.dedup();
        match rules {
            Some(rules) if problems.is_empty() => Ok(DocumentFields {
                title: title.to_owned(),
                document_type: self.document_type,
                content: self.content.clone(),
                description: self.description.clone().filter(|d| !d.trim().is_empty()),
                tags,
                is_global: self.is_global,
                targeting_rules: rules.to_json(),
                is_active: self.is_active,
            }),
            _ => Err(InvalidDocument { problems }),
        }
    }
}

fn problem(field: &str, message: &str) -> RuleProblem {
    RuleProblem { field: field.to_owned(), message: message.to_owned() }
}

/// Creates a document and logs it.
pub async fn create(
    db: &PgPool,
    input: &DocumentInput,
    actor: &str,
) -> Result<DocumentRow, DocumentError> {
    let fields = input.validate()?;
    let mut tx = db.begin().await?;
    let row = document_store::insert(&mut *tx, &fields, actor).await?;
    log(&mut tx, "context_document.created", actor, &row).await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a document; a change of anything but `is_active` makes a new version and keeps
/// the previous one.
pub async fn update(
    db: &PgPool,
    document_id: Uuid,
    input: &DocumentInput,
    actor: &str,
) -> Result<DocumentRow, DocumentError> {
    let fields = input.validate()?;
    let mut tx = db.begin().await?;
    let row = document_store::update(&mut tx, document_id, &fields, actor)
        .await?
        .ok_or(DocumentError::NotFound(document_id))?;
    log(&mut tx, "context_document.updated", actor, &row).await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn delete(db: &PgPool, document_id: Uuid, actor: &str) -> Result<(), DocumentError> {
    let mut tx = db.begin().await?;
    let row = document_store::get(&mut *tx, document_id)
        .await?
        .ok_or(DocumentError::NotFound(document_id))?;
    document_store::delete(&mut *tx, document_id).await?;
    log(&mut tx, "context_document.deleted", actor, &row).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn versions(db: &PgPool, document_id: Uuid) -> Result<Vec<VersionRow>, DocumentError> {
    document_store::get(db, document_id).await?.ok_or(DocumentError::NotFound(document_id))?;
    Ok(document_store::versions(db, document_id).await?)
}

async fn log(
    tx: &mut sqlx::PgConnection,
    event: &str,
    actor: &str,
    row: &DocumentRow,
) -> Result<(), sqlx::Error> {
    let details = serde_json::json!({
        "context_document_id": row.context_document_id,
        "title": row.title,
        "version": row.version,
    });
    crate::store::activity::record(&mut *tx, None, event, actor, &details).await
}

/// Reads a markdown or plain-text file into a document: the title is the first `# ` heading
/// (else the file name without its extension), the type is guessed from the name, and a
/// plain-text file is kept as it is (markdown renders it as paragraphs).
pub fn from_file(file_name: &str, bytes: &[u8]) -> Result<DocumentInput, InvalidDocument> {
    let lower = file_name.to_ascii_lowercase();
    let extension = lower.rsplit_once('.').map(|(_, ext)| ext).unwrap_or_default();
    if !matches!(extension, "md" | "markdown" | "txt" | "text") {
        return Err(InvalidDocument {
            problems: vec![problem("file_name", "must end in .md, .markdown, .txt or .text")],
        });
    }
    let Ok(content) = std::str::from_utf8(bytes) else {
        return Err(InvalidDocument { problems: vec![problem("content", "must be UTF-8 text")] });
    };
    let content = content.trim_start_matches('\u{feff}');
    let stem = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = stem.rsplit_once('.').map_or(stem, |(stem, _)| stem);
    let heading = content
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("# ").map(str::trim))
        .filter(|heading| !heading.is_empty());
    let title = heading.map(str::to_owned).unwrap_or_else(|| stem.replace(['_', '-'], " "));
    let document_type = guess_type(&lower);
    Ok(DocumentInput {
        title,
        document_type,
        content: content.to_owned(),
        description: None,
        tags: Vec::new(),
        is_global: false,
        targeting_rules: None,
        is_active: true,
    })
}

fn guess_type(name: &str) -> DocumentType {
    let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let has = |word: &str| words.contains(&word);
    if has("runbook") {
        DocumentType::Runbook
    } else if has("playbook") {
        DocumentType::Playbook
    } else if has("sop") {
        DocumentType::Sop
    } else if name.contains("ir_plan") || name.contains("ir-plan") || has("irp") {
        DocumentType::IrPlan
    } else if has("detection") {
        DocumentType::DetectionGuide
    } else {
        DocumentType::Other
    }
}

/// Imports a markdown or plain-text file as a new document.
pub async fn import_file(
    db: &PgPool,
    file_name: &str,
    bytes: &[u8],
    actor: &str,
) -> Result<DocumentRow, DocumentError> {
    let input = from_file(file_name, bytes)?;
    create(db, &input, actor).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_markdown_file_takes_its_title_from_its_first_heading_and_its_type_from_its_name() {
        let input = from_file(
            "runbooks/phishing-runbook.md",
            b"\xef\xbb\xbfIntro\n# Phishing response\n\nSteps",
        )
        .unwrap();
        assert_eq!(input.title, "Phishing response");
        assert_eq!(input.document_type, DocumentType::Runbook);
        assert!(input.content.starts_with("Intro"));

        let text = from_file("vpn_access_sop.txt", b"Call the on-call engineer.").unwrap();
        assert_eq!(text.title, "vpn access sop");
        assert_eq!(text.document_type, DocumentType::Sop);
    }

    #[test]
    fn files_that_are_not_text_or_not_markdown_are_refused() {
        assert_eq!(from_file("a.pdf", b"x").unwrap_err().problems[0].field, "file_name");
        assert_eq!(from_file("a.md", b"\xff\xfe").unwrap_err().problems[0].field, "content");
    }

    #[test]
    fn validation_names_every_bad_field_with_the_targeting_rule_path() {
        let input = DocumentInput {
            title: " ".into(),
            document_type: DocumentType::Runbook,
            content: "".into(),
            description: None,
            tags: vec![],
            is_global: false,
            targeting_rules: Some(serde_json::json!({
                "match_all": [{"field": "severity", "op": "gte", "value": "Severe"}]
            })),
            is_active: true,
        };
        let fields: Vec<String> =
            input.validate().unwrap_err().problems.into_iter().map(|p| p.field).collect();
        assert_eq!(fields[..2], ["title", "content"]);
        assert!(fields[2].starts_with("targeting_rules.match_all[0]"), "{fields:?}");
    }
}
