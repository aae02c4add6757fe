//! One LISTEN connection per server process, keeping the process's caches in step with changes
//! made by any process: API keys (dropped on change) and indicator mappings (reloaded).

use std::time::Duration;

use domain::notify::{API_KEY_CHANGED, CONFIG_CHANGED};
use sqlx::postgres::PgListener;

use crate::state::AppState;

/// Starts listening; the task ends when the pool closes.
pub async fn spawn(state: AppState) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
    let mut listener = PgListener::connect_with(&state.db).await?;
    listener.listen_all([API_KEY_CHANGED, CONFIG_CHANGED]).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) if notification.channel() == API_KEY_CHANGED => state.keys.clear(),
                Ok(_) => reload_mappings(&state).await,
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    // Changes made while disconnected were not heard: start from the database.
                    tracing::warn!(error = %error, "config listener lost its connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    state.keys.clear();
                    reload_mappings(&state).await;
                }
            }
        }
    }))
}

async fn reload_mappings(state: &AppState) {
    if let Err(error) = state.mappings.reload(&state.db).await {
        tracing::warn!(error = %error, "reloading indicator mappings failed; keeping the previous set");
    }
}
