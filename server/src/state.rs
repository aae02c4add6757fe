//! What every request handler shares: the pool, the settings, and the caches that the
//! [`crate::listener`] keeps fresh.

use std::sync::Arc;
use std::time::Duration;

use domain::api_key::KeyCache;
use domain::ingest::{AlertWriter, IngestSettings};
use domain::mapping::MappingCache;
use domain::notify::JobWaker;
use sqlx::PgPool;

/// The server's settings, read once from the environment by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub ingest: IngestSettings,
    /// Largest accepted request body, chunked bodies included.
    pub max_body_bytes: usize,
    /// How long a client may take to send its body. A SIEM sends a few kilobytes at once; a
    /// client trickling bytes would otherwise hold a connection for as long as it likes.
    pub body_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ingest: IngestSettings::default(),
            max_body_bytes: 5 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: PgPool,
    pub cfg: Arc<ServerConfig>,
    pub keys: Arc<KeyCache>,
    pub mappings: Arc<MappingCache>,
    /// Writes accepted alerts, grouping concurrent ones into shared transactions.
    pub writer: AlertWriter,
}

impl AppState {
    /// Loads the caches. Call [`crate::listener::spawn`] with the result to keep them current.
    pub async fn new(db: PgPool, cfg: ServerConfig) -> Result<Self, sqlx::Error> {
        let mappings = MappingCache::load(&db).await?;
        let waker = JobWaker::spawn(db.clone());
        let writer = AlertWriter::spawn(db.clone(), waker, cfg.ingest.dedup_window);
        Ok(AppState {
            db,
            cfg: Arc::new(cfg),
            keys: Arc::new(KeyCache::default()),
            mappings: Arc::new(mappings),
            writer,
        })
    }
}
