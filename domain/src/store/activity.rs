//! The `activity` table: an append-only log of what happened to alerts and configuration.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Appends one event. `details` must already be free of secrets.
pub async fn record(
    db: impl PgExecutor<'_>,
    alert_id: Option<Uuid>,
    event_type: &str,
    actor: &str,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
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
