//! Shared test setup: serve the app on an ephemeral port, create keys, post payloads, run the
//! worker until the queue is empty, and read results back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::dispatch::{Deliverer, Dispatcher};
use domain::outbound::{Outbound, OutboundPolicy};

use domain::alert::Source;
use domain::api_key::{KeyType, NewKey, Scope};
use domain::enrich::Enricher;
use domain::secret::SecretKey;
use server::{AppState, ServerConfig};
use sqlx::PgPool;

pub(crate) struct TestApp {
    pub(crate) address: SocketAddr,
    pub(crate) state: AppState,
    pub(crate) client: reqwest::Client,
    /// A key with every scope.
    pub(crate) admin_key: String,
}

/// Seeds the database the way `alertgraph migrate` does and serves the app on 127.0.0.1:0.
pub(crate) async fn spawn_app(db: PgPool) -> TestApp {
    let cfg = ServerConfig {
        secret_key: Some(test_key()),
        outbound: outbound_policy(),
        ..ServerConfig::default()
    };
    spawn_app_with(db, cfg).await
}

pub(crate) async fn spawn_app_with(db: PgPool, cfg: ServerConfig) -> TestApp {
    domain::migrate(&db).await.expect("migrating the test database");
    let state = AppState::new(db.clone(), cfg).await.expect("loading app state");
    server::listener::spawn(state.clone()).await.expect("starting the listener");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a port");
    let address = listener.local_addr().expect("local address");
    let app = server::app(state.clone());
    tokio::spawn(async move { axum::serve(server::http::without_delay(listener), app).await });
    let admin_key = create_key(&db, "admin", &[Scope::Admin], None).await;
    TestApp { address, state, client: reqwest::Client::new(), admin_key }
}

pub(crate) async fn create_key(
    db: &PgPool,
    name: &str,
    scopes: &[Scope],
    sources: Option<Vec<Source>>,
) -> String {
    let new = NewKey {
        name: name.into(),
        scopes: scopes.to_vec(),
        key_type: KeyType::Agent,
        allowed_sources: sources,
        expires_at: None,
        rate_limit_per_minute: None,
    };
    domain::api_key::create(db, &new, "tests").await.expect("creating a key").1
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Posts `body` to `/v1/ingest/{source}` with the admin key.
    pub(crate) async fn ingest(
        &self,
        source: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.ingest_with_key(source, body, &self.admin_key).await
    }

    pub(crate) async fn ingest_with_key(
        &self,
        source: &str,
        body: impl Into<reqwest::Body>,
        key: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/ingest/{source}")))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sending the ingest request")
    }
}

/// Reads a sample payload from `../shared/fixtures/alerts/`.
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/../shared/fixtures/alerts/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// A provider definition, extraction list or provider answer from `../shared/fixtures/providers`.
pub(crate) fn provider_fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../shared/fixtures/providers/{name}", env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"));
    serde_json::from_str(&text).unwrap()
}

/// The secret key the tests seal credentials with.
pub(crate) fn test_key() -> SecretKey {
    SecretKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").expect("a valid key")
}

/// The enrichment stage's dependencies, with `env` standing in for the process environment.
pub(crate) async fn enricher(db: &PgPool, env: &[(&str, &str)]) -> Arc<Enricher> {
    enricher_with(db, env, Default::default()).await
}

/// [`enricher`] with other tunables.
pub(crate) async fn enricher_with(
    db: &PgPool,
    env: &[(&str, &str)],
    options: domain::enrich::EnrichOptions,
) -> Arc<Enricher> {
    let env = env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    let client = Outbound::new(outbound_policy(), "alertgraph-tests");
    let (enricher, _reloading) =
        Enricher::start(db, client, test_key(), env, options).await.expect("starting the enricher");
    enricher
}

/// What tests may call: local mock servers only (SPEC §1: tests set `127.0.0.0/8`).
pub(crate) fn outbound_policy() -> OutboundPolicy {
    OutboundPolicy::parse("127.0.0.0/8").expect("a valid allow list")
}

/// An HTTP client under [`outbound_policy`].
pub(crate) fn outbound_client() -> Outbound {
    Outbound::new(outbound_policy(), "alertgraph-tests")
}

/// Delivery retries a test can wait for: 50 ms, 100 ms, 150 ms.
pub(crate) fn test_schedule() -> Vec<Duration> {
    vec![Duration::from_millis(50), Duration::from_millis(100), Duration::from_millis(150)]
}

/// The production job handlers around `enricher`, with a dispatcher of their own and a
/// deliverer on [`test_schedule`].
pub(crate) async fn pipeline(db: &PgPool, enricher: Arc<Enricher>) -> worker::Handlers {
    pipeline_with(db, enricher, test_schedule()).await
}

/// [`pipeline`] with a retry schedule of the caller's.
pub(crate) async fn pipeline_with(
    db: &PgPool,
    enricher: Arc<Enricher>,
    schedule: Vec<Duration>,
) -> worker::Handlers {
    let (dispatcher, _reloading) = Dispatcher::start(db).await.expect("starting the dispatcher");
    let deliverer = Deliverer::with_schedule(test_key(), outbound_policy(), schedule);
    worker::pipeline(enricher, dispatcher, Arc::new(deliverer))
}

/// Runs the production job handlers until no job is due, then stops their listeners (each
/// holds a connection of the test's small pool).
pub(crate) async fn run_worker(db: &PgPool) -> usize {
    let client = Outbound::new(outbound_policy(), "alertgraph-tests");
    let (enricher, enricher_listener) =
        Enricher::start(db, client, test_key(), Default::default(), Default::default())
            .await
            .expect("starting the enricher");
    let (dispatcher, dispatcher_listener) =
        Dispatcher::start(db).await.expect("starting the dispatcher");
    let deliverer = Deliverer::with_schedule(test_key(), outbound_policy(), test_schedule());
    let handlers = worker::pipeline(enricher, dispatcher, Arc::new(deliverer));
    let ran = worker::run_until_idle(db, &handlers, "test-worker").await.expect("running jobs");
    enricher_listener.abort();
    dispatcher_listener.abort();
    ran
}

pub(crate) async fn count(db: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(db)
        .await
        .expect("counting rows")
}

/// Asserts the response status, showing the body when it differs.
pub(crate) async fn json_with_status(
    response: reqwest::Response,
    expected: u16,
) -> serde_json::Value {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the body");
    assert_eq!(status, expected, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("body is not JSON ({error}): {text}"))
}

/// The test's database behind a pool of 20 connections instead of `#[sqlx::test]`'s 5, for
/// tests that run live workers: every worker's listeners hold a connection each.
pub(crate) fn wider(db: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect_lazy_with((*db.connect_options()).clone())
}

/// The Python packages real clients come from: the official MCP SDK, and the Prometheus
/// project's client, whose strict OpenMetrics parser reads `/metrics`.
const PYTHON_PACKAGES: [&str; 2] = ["mcp==2.3.0", "prometheus-client==0.26.0"];

/// A Python with [`PYTHON_PACKAGES`]: a virtual environment under the target directory,
/// created and installed from PyPI the first time a test needs it.
pub(crate) fn python() -> &'static std::path::Path {
    static PYTHON: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
        let python = venv.join("bin/python");
        let installed = venv.join(format!("installed-{}", PYTHON_PACKAGES.join("-")));
        if !installed.exists() {
            run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(std::process::Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(PYTHON_PACKAGES));
            std::fs::write(&installed, "").expect("marking the venv installed");
        }
        python
    })
}

fn run(command: &mut std::process::Command) {
    let status = command.status().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(status.success(), "{command:?} failed: {status}");
}
