//! One LISTEN connection per server process, keeping the process's caches in step with changes
//! made by any process (API keys dropped on change, indicator mappings reloaded), and feeding
//! alert events to this process's GraphQL subscribers: each event's alert is read once and
//! broadcast to all of them.

use std::time::Duration;

use std::sync::Arc;

use domain::notify::{ALERT_EVENTS, API_KEY_CHANGED, AlertEvent, CONFIG_CHANGED};
use sqlx::postgres::PgListener;

use crate::state::{AppState, LiveAlert};

/// Starts listening; the task ends when the pool closes.
pub async fn spawn(state: AppState) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
    let mut listener = PgListener::connect_with(&state.db).await?;
    listener.listen_all([API_KEY_CHANGED, CONFIG_CHANGED, ALERT_EVENTS]).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) if notification.channel() == API_KEY_CHANGED => state.keys.clear(),
                Ok(notification) if notification.channel() == ALERT_EVENTS => {
                    publish(&state, notification.payload()).await
                }
                Ok(_) => reload_config(&state).await,
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    // Changes made while disconnected were not heard: start from the database.
                    tracing::warn!(error = %error, "config listener lost its connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    state.keys.clear();
                    reload_config(&state).await;
                }
            }
        }
    }))
}

/// Reloads what this process caches of the configuration: mappings and providers.
async fn reload_config(state: &AppState) {
    if let Some(enricher) = &state.enricher {
        enricher.reload(&state.db).await;
    }
    if let Err(error) = state.mappings.reload(&state.db).await {
        tracing::warn!(error = %error, "reloading indicator mappings failed; keeping the previous set");
    }
}

/// Reads the alert an event names and hands it to every subscriber. With no subscriber, it
/// reads nothing.
async fn publish(state: &AppState, payload: &str) {
    if state.events.receiver_count() == 0 {
        return;
    }
    let event: AlertEvent = match serde_json::from_str(payload) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(error = %error, payload, "ignoring a malformed alert event");
            return;
        }
    };
    match domain::store::graph::alerts_by_id(&state.db, &[event.alert_id]).await {
        Ok(rows) => {
            for alert in rows {
                // Fails only when every subscriber has gone, which is fine.
                let _ = state.events.send(Arc::new(LiveAlert { kind: event.kind, alert }));
            }
        }
        Err(error) => tracing::warn!(error = %error, "reading an alert for its subscribers failed"),
    }
}
