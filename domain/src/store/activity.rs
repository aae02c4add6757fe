//! The `activity` table: an append-only log of what happened to alerts and configuration.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Appends one event. Values under keys that name secrets (passwords, tokens, API keys,
/// authorization headers, credentials) are replaced by `***` first, however deep.
pub async fn record(
    db: impl PgExecutor<'_>,
    alert_id: Option<Uuid>,
    event_type: &str,
    actor: &str,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut details = details.clone();
    redact(&mut details);
    let details = &details;
    sqlx::query!(
        "insert into activity (alert_id, event_type, actor, details) values ($1, $2, $3, $4)",
        alert_id,
        event_type,
        actor,
        details,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One logged event.
#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub activity_id: i64,
    pub event_type: String,
    pub actor: String,
    pub details: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An alert's events, oldest first.
pub async fn for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    sqlx::query_as!(
        ActivityRow,
        "select activity_id, event_type, actor, details, created_at
         from activity where alert_id = $1 order by activity_id",
        alert_id,
    )
    .fetch_all(db)
    .await
}

/// Configuration changes (events with no alert: keys, providers, mappings, agents, documents,
/// rules), newest first, older than event `before` when given.
pub async fn configuration(
    db: impl PgExecutor<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    sqlx::query_as!(
        ActivityRow,
        "select activity_id, event_type, actor, details, created_at
         from activity
         where alert_id is null and ($1::int8 is null or activity_id < $1)
         order by activity_id desc
         limit $2",
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Masks the values of keys that name secrets.
pub fn redact(value: &mut serde_json::Value) {
    const SECRET_WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "credential",
    ];
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let key = key.to_ascii_lowercase().replace('-', "_");
                if SECRET_WORDS.iter().any(|word| key.contains(word)) && !inner.is_null() {
                    *inner = serde_json::Value::String("***".into());
                } else {
                    redact(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut details = serde_json::json!({
            "name": "bot", "auth": {"Authorization": "Bearer x", "client-secret": "y"},
            "list": [{"api_key": "z", "note": "kept"}], "token_count": null
        });
        super::redact(&mut details);
        assert_eq!(
            details,
            serde_json::json!({
                "name": "bot", "auth": {"Authorization": "***", "client-secret": "***"},
                "list": [{"api_key": "***", "note": "kept"}], "token_count": null
            })
        );
    }
}
