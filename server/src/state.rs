//! What every request handler shares: the pool, the settings, and the caches that the
//! [`crate::listener`] keeps fresh.

use std::sync::Arc;
use std::time::Duration;

use domain::api_key::{AuthError, KeyCache, Principal, RateLimiter};
use domain::ingest::{self, Accepted, AlertWriter, IngestError, IngestSettings, Submission};
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
    /// Seals agents' secrets written through the API; without it those mutations refuse.
    pub secret_key: Option<domain::secret::SecretKey>,
    /// Which private destinations agents' webhook URLs may point at.
    pub outbound: domain::outbound::OutboundPolicy,
    /// The process environment, for providers' `<PROVIDER>_<FIELD>` credentials.
    pub provider_env: std::collections::BTreeMap<String, String>,
    /// How long a GraphQL batch loader gathers keys before it runs its one statement: longer
    /// batches more reliably under load, shorter answers sooner.
    pub graphql_batch_delay: Duration,
    /// A directory of `*.graphql` operation files whose operations become MCP tools beside the
    /// built-in ones.
    pub operations_dir: Option<std::path::PathBuf>,
    /// `Host` headers `/mcp` answers (DNS-rebinding protection); empty accepts any.
    pub mcp_allowed_hosts: Vec<String>,
    /// Memory for provider results kept between GraphQL requests; 0 keeps none.
    pub graphql_result_cache_bytes: u64,
    /// Serves the simulated provider of `up --demo` at `GET /demo/intel`.
    pub demo: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ingest: IngestSettings::default(),
            max_body_bytes: 5 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
            secret_key: None,
            outbound: Default::default(),
            graphql_batch_delay: Duration::from_micros(500),
            provider_env: Default::default(),
            operations_dir: None,
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            graphql_result_cache_bytes: 64 << 20,
            demo: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: PgPool,
    pub cfg: Arc<ServerConfig>,
    pub keys: Arc<KeyCache>,
    /// Per-key request limits, shared with every replica through the database.
    pub limits: Arc<RateLimiter>,
    pub mappings: Arc<MappingCache>,
    /// Writes accepted alerts, grouping concurrent ones into shared transactions.
    pub writer: AlertWriter,
    /// Alert events heard from PostgreSQL by [`crate::listener`], for GraphQL subscribers.
    pub events: tokio::sync::broadcast::Sender<Arc<LiveAlert>>,
    /// Provider calls made by the API (`enrichIndicator`, `testEnrichmentProvider`), under the
    /// SSRF guard.
    pub outbound: domain::outbound::Outbound,
    /// On-demand enrichment through the shared cache; `None` without a secret key.
    pub enricher: Option<Arc<domain::enrich::Enricher>>,
    /// The MCP tools, from the operation files.
    pub catalog: Arc<crate::mcp::Catalog>,
    /// Provider results read by GraphQL, checked against the database on every use.
    pub results: Arc<crate::graphql::results::ResultCache>,
    /// GraphQL operations already parsed, by their text.
    pub parsed: Arc<crate::graphql::ParsedQueries>,
}

/// Why the server's state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("loading the server's caches: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Operations(#[from] crate::mcp::CatalogErrors),
}

/// An alert event with the alert as it was read once for every subscriber of this process.
#[derive(Debug, Clone)]
pub struct LiveAlert {
    pub kind: domain::notify::AlertEventKind,
    pub alert: domain::store::alert::AlertRow,
}

/// Events a subscriber may fall behind by before it skips the oldest (a slow subscriber never
/// holds the others back).
const EVENT_BUFFER: usize = 4096;

/// Whether an ingest checks the source's webhook signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// A webhook from a SIEM: checked when the source has a secret.
    Checked,
    /// Sent by a caller trusted otherwise (an API key over GraphQL, this server's demo), who
    /// has no SIEM's secret to sign with.
    NotExpected,
}

impl AppState {
    /// Loads the caches. Call [`crate::listener::spawn`] with the result to keep them current.
    pub async fn new(db: PgPool, cfg: ServerConfig) -> Result<Self, StateError> {
        let catalog = crate::mcp::Catalog::load(cfg.operations_dir.as_deref()).await?;
        let mappings = MappingCache::load(&db).await?;
        let waker = JobWaker::spawn(db.clone());
        let writer = AlertWriter::spawn(db.clone(), waker, cfg.ingest.dedup_window);
        let outbound = domain::outbound::Outbound::new(
            cfg.outbound.clone(),
            concat!("alertgraph/", env!("CARGO_PKG_VERSION")),
        );
        let enricher = match &cfg.secret_key {
            // Kept current by `crate::listener`, which reloads it on configuration changes.
            Some(key) => Some(
                domain::enrich::Enricher::load(
                    &db,
                    outbound.clone(),
                    key.clone(),
                    cfg.provider_env.clone(),
                    Default::default(),
                )
                .await,
            ),
            None => None,
        };
        let results = crate::graphql::results::ResultCache::new(cfg.graphql_result_cache_bytes);
        Ok(AppState {
            db,
            cfg: Arc::new(cfg),
            keys: Arc::new(KeyCache::default()),
            limits: Arc::new(RateLimiter::default()),
            mappings: Arc::new(mappings),
            writer,
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            outbound,
            enricher,
            catalog: Arc::new(catalog),
            results: Arc::new(results),
            parsed: Default::default(),
        })
    }

    /// Accepts one payload with the indicator mappings in force now: every way in (REST,
    /// GraphQL's `ingestAlert`, the demo's sample alerts) goes through here. With
    /// [`Signature::Checked`], the source's webhook signature is verified when a secret is
    /// configured for it.
    pub async fn ingest(
        &self,
        submission: Submission<'_>,
        signature: Signature,
    ) -> Result<Accepted, IngestError> {
        let mappings = self.mappings.snapshot();
        match signature {
            Signature::Checked => {
                ingest::accept(&self.writer, &self.cfg.ingest, &mappings, submission).await
            }
            Signature::NotExpected => {
                let settings =
                    IngestSettings { secrets: Default::default(), ..self.cfg.ingest.clone() };
                ingest::accept(&self.writer, &settings, &mappings, submission).await
            }
        }
    }

    /// The caller behind a presented key, once its key is verified and its rate limit admits
    /// one more request. Every authenticated route, GraphQL over HTTP and WebSocket, and MCP
    /// go through here.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let principal = self.keys.verify(&self.db, presented).await?;
        self.limits.admit(&self.db, &principal).await?;
        Ok(principal)
    }
}
