//! Subcommands and their configuration (SPEC §1). Every flag can also be set through the
//! environment variable of the same name; bad values stop start-up with one sentence naming
//! the variable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use domain::alert::Source;
use domain::api_key::{self, KeyType, NewKey, Scope};
use domain::dispatch::{Deliverer, Dispatcher};
use domain::enrich::{EnrichOptions, Enricher};
use domain::ingest::{IngestSettings, WebhookSecrets};
use domain::outbound::{Outbound, OutboundPolicy};
use domain::secret::{Secret, SecretKey};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::database;

#[derive(Debug, Parser)]
#[command(name = "alertgraph", version, about = "The data layer between SIEM alerts and AI agents")]
pub(crate) struct Cli {
    /// PostgreSQL URL. Unset: postgres://127.0.0.1:5432/alertgraph?sslmode=disable, or, for `up`, a private
    /// cluster under ./.alertgraph/pg when nothing answers there.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Connections in the HTTP server's pool, all opened at start. One-shot commands (`migrate`,
    /// `api-key`, `secrets`) open at most two.
    #[arg(
        long,
        env = "ALERTGRAPH_DB_POOL_SIZE",
        value_name = "ALERTGRAPH_DB_POOL_SIZE",
        default_value_t = 32,
        global = true
    )]
    db_pool_size: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations, then run the HTTP server and a worker in this process.
    Up {
        /// Also seed a simulated threat-intelligence provider (served by this server) and
        /// sample detection rules, documents and alerts, once per database, so that enriched
        /// alerts show within seconds without any provider account. An admin API key for
        /// trying it out is written to ./.alertgraph/demo-api-key.
        #[arg(long, env = "ALERTGRAPH_DEMO")]
        demo: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        shared: SharedArgs,
    },
    /// Run the HTTP server only.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        shared: SharedArgs,
    },
    /// Run a worker only.
    Work {
        #[command(flatten)]
        worker: WorkerArgs,
        /// Where to answer `GET /metrics` for Prometheus (this worker's job, provider and
        /// delivery metrics, and the queue's). Unset: no listener. `up` reports them on the
        /// server's own `/metrics`.
        #[arg(long, env = "ALERTGRAPH_WORKER_METRICS_LISTEN", value_name = "ADDRESS")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        shared: SharedArgs,
    },
    /// Serve MCP over stdin and stdout, for desktop clients that launch their servers (Claude
    /// Desktop, IDEs). Acts with the API key in ALERTGRAPH_API_KEY; logs go to stderr.
    McpStdio {
        /// The API key (`cai_…`) every tool call acts with.
        #[arg(
            long,
            env = "ALERTGRAPH_API_KEY",
            value_name = "ALERTGRAPH_API_KEY",
            hide_env_values = true
        )]
        api_key: String,
        #[command(flatten)]
        tools: ToolArgs,
        #[command(flatten)]
        shared: SharedArgs,
    },
    /// Apply migrations and exit.
    Migrate,
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Manage the key that encrypts stored secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored secret under a new key, in one transaction, and print the new
    /// key. The current key is read from ALERTGRAPH_SECRET_KEY, else ./.alertgraph/secret.key
    /// (which is then rewritten with the new key).
    Rotate {
        #[arg(
            long,
            env = "ALERTGRAPH_SECRET_KEY",
            value_name = "ALERTGRAPH_SECRET_KEY",
            hide_env_values = true
        )]
        secret_key: Option<String>,
        /// The new key (base64, 32 bytes); generated when omitted.
        #[arg(
            long,
            env = "ALERTGRAPH_NEW_SECRET_KEY",
            value_name = "ALERTGRAPH_NEW_SECRET_KEY",
            hide_env_values = true
        )]
        new_key: Option<String>,
    },
}

/// Settings both the server and the worker use.
#[derive(Debug, Args)]
struct SharedArgs {
    /// Base64 of 32 bytes: the key that encrypts stored secrets. `serve` and `work` require
    /// it; `up` creates ./.alertgraph/secret.key and uses that when it is unset.
    #[arg(
        long,
        env = "ALERTGRAPH_SECRET_KEY",
        value_name = "ALERTGRAPH_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Comma-separated host names, IPs or CIDR networks that outbound calls (providers, agent
    /// webhooks) may reach although they are private, loopback or link-local. Default: none.
    #[arg(long, env = "ALERTGRAPH_OUTBOUND_ALLOW", value_name = "ALERTGRAPH_OUTBOUND_ALLOW")]
    outbound_allow: Option<String>,
}

impl SharedArgs {
    /// The secret key, which `command` cannot run without.
    fn require_key(&self, command: &str) -> anyhow::Result<SecretKey> {
        match &self.secret_key {
            Some(text) => SecretKey::from_base64(text).context("ALERTGRAPH_SECRET_KEY"),
            None => bail!(
                "ALERTGRAPH_SECRET_KEY is not set; `{command}` needs the key that encrypts stored \
                 secrets (`alertgraph up` keeps one in {SECRET_KEY_FILE})"
            ),
        }
    }

    fn policy(&self) -> anyhow::Result<OutboundPolicy> {
        match &self.outbound_allow {
            Some(list) => Ok(OutboundPolicy::parse(list)?),
            None => Ok(OutboundPolicy::default()),
        }
    }
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "ALERTGRAPH_LISTEN",
        value_name = "ALERTGRAPH_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    listen: SocketAddr,
    /// Deduplication window in seconds; 0 turns deduplication off.
    #[arg(
        long,
        env = "ALERTGRAPH_DEDUP_WINDOW_SECONDS",
        value_name = "ALERTGRAPH_DEDUP_WINDOW_SECONDS",
        default_value_t = 86_400
    )]
    dedup_window_seconds: u64,
    /// Largest accepted request body in bytes.
    #[arg(
        long,
        env = "ALERTGRAPH_MAX_BODY_BYTES",
        value_name = "ALERTGRAPH_MAX_BODY_BYTES",
        default_value_t = 5 * 1024 * 1024,
    )]
    max_body_bytes: usize,
    /// Memory for provider results kept between GraphQL requests, in MiB (checked against the
    /// database on every use, so never stale); 0 keeps none.
    #[arg(
        long,
        env = "ALERTGRAPH_GRAPHQL_CACHE_MB",
        value_name = "ALERTGRAPH_GRAPHQL_CACHE_MB",
        default_value_t = 64
    )]
    graphql_cache_mb: u64,
    /// HMAC key for `X-Sentinel-Signature`. Unset: Sentinel payloads are not signed.
    #[arg(
        long,
        env = "SENTINEL_WEBHOOK_SECRET",
        value_name = "SENTINEL_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    sentinel_webhook_secret: Option<String>,
    /// HMAC key for `X-Elastic-Signature`. Unset: Elastic payloads are not signed.
    #[arg(
        long,
        env = "ELASTIC_WEBHOOK_SECRET",
        value_name = "ELASTIC_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    elastic_webhook_secret: Option<String>,
    /// Token expected in `X-Splunk-Webhook-Secret`. Unset: Splunk payloads are not checked.
    #[arg(
        long,
        env = "SPLUNK_WEBHOOK_SECRET",
        value_name = "SPLUNK_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    splunk_webhook_secret: Option<String>,
    /// The URL people and agents reach this server at, such as `https://alertgraph.example.com`
    /// behind a proxy. Its host is answered on `/mcp` besides the loopback names.
    #[arg(
        long,
        env = "ALERTGRAPH_PUBLIC_URL",
        value_name = "ALERTGRAPH_PUBLIC_URL",
        value_parser = public_url
    )]
    public_url: Option<url::Url>,
    /// Comma-separated `Host` values `/mcp` answers (DNS-rebinding protection), such as
    /// `alertgraph.example.com`; `*` accepts any. Default: localhost, 127.0.0.1, ::1, and the
    /// host of ALERTGRAPH_PUBLIC_URL.
    #[arg(
        long,
        env = "ALERTGRAPH_MCP_ALLOWED_HOSTS",
        value_name = "ALERTGRAPH_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    mcp_allowed_hosts: Option<Vec<String>>,
    #[command(flatten)]
    tools: ToolArgs,
}

/// Where MCP tools come from.
#[derive(Debug, Args)]
struct ToolArgs {
    /// A directory of GraphQL operation files (`*.graphql`) whose named operations become MCP
    /// tools beside the built-in ones. The server refuses to start if one is invalid.
    #[arg(long, env = "ALERTGRAPH_OPERATIONS_DIR", value_name = "ALERTGRAPH_OPERATIONS_DIR")]
    operations_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Jobs one worker runs at the same time.
    #[arg(
        long,
        env = "ALERTGRAPH_WORKER_CONCURRENCY",
        value_name = "ALERTGRAPH_WORKER_CONCURRENCY",
        default_value_t = 64
    )]
    worker_concurrency: usize,
    /// Seconds a failed provider lookup is remembered before the provider is asked again.
    #[arg(
        long,
        env = "ALERTGRAPH_ENRICHMENT_FAILURE_TTL_SECONDS",
        value_name = "ALERTGRAPH_ENRICHMENT_FAILURE_TTL_SECONDS",
        default_value_t = 60
    )]
    enrichment_failure_ttl_seconds: u64,
    /// Connections in the worker's own pool. Separate from the server's, so that a busy worker
    /// never starves ingest of connections in `up`.
    #[arg(
        long,
        env = "ALERTGRAPH_WORKER_POOL_SIZE",
        value_name = "ALERTGRAPH_WORKER_POOL_SIZE",
        default_value_t = 16
    )]
    worker_pool_size: u32,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: alerts:read, alerts:write, enrichments:read, agents:read,
        /// agents:write, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long = "type", default_value = "human")]
        key_type: String,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// Comma-separated sources this key may ingest into (default: all).
        #[arg(long, value_delimiter = ',')]
        allowed_sources: Option<Vec<String>>,
        /// Requests a minute the key may make, across every server together (default:
        /// unlimited); beyond it, requests get 429 RATE_LIMITED until the minute ends.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        rate_limit_per_minute: Option<i32>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke the key with this visible prefix (as shown by `list`).
    Revoke { prefix: String },
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let starts_embedded = matches!(cli.command, Command::Up { .. });
    let (url, embedded) = database::resolve(cli.database_url.as_deref(), starts_embedded).await?;
    let one_shot =
        matches!(cli.command, Command::Migrate | Command::ApiKey(_) | Command::Secrets(_));
    let pool_size = if one_shot { cli.db_pool_size.min(2) } else { cli.db_pool_size };
    let db = database::connect(&url, pool_size).await?;
    let result = match cli.command {
        Command::Up { demo, server, worker, shared } => {
            up(&url, db.clone(), demo, server, worker, shared).await
        }
        Command::Serve { server, shared } => {
            let key = shared.require_key("serve")?;
            let policy = shared.policy()?;
            check_migrated(&db).await?;
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(stop_on_signal(stop));
            serve(db.clone(), server, key, policy, Demo::Off, stopped).await
        }
        Command::Work { worker, metrics_listen, shared } => {
            let key = shared.require_key("work")?;
            let policy = shared.policy()?;
            check_migrated(&db).await?;
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(stop_on_signal(stop));
            if let Some(address) = metrics_listen {
                serve_metrics(db.clone(), address, stopped.clone()).await?;
            }
            work(&url, worker, key, policy, stopped).await
        }
        Command::McpStdio { api_key, tools, shared } => {
            check_migrated(&db).await?;
            mcp_stdio(db.clone(), &api_key, tools, shared).await
        }
        Command::Migrate => migrate(&db).await,
        Command::ApiKey(command) => {
            check_migrated(&db).await?;
            api_key_command(&db, command).await
        }
        Command::Secrets(SecretsCommand::Rotate { secret_key, new_key }) => {
            check_migrated(&db).await?;
            rotate_secrets(&db, secret_key, new_key).await
        }
    };
    db.close().await;
    if let Some(embedded) = embedded {
        embedded.stop().await;
    }
    result
}

async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    domain::migrate(db).await.context("applying database migrations")?;
    tracing::info!("database is up to date");
    Ok(())
}

/// `serve`, `work` and the key commands do not migrate on their own (several replicas may
/// start at once); they refuse to run against a database that `migrate` has not prepared.
async fn check_migrated(db: &PgPool) -> anyhow::Result<()> {
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(db)
            .await
            .unwrap_or(None);
    let latest = domain::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if applied.unwrap_or(0) < latest {
        bail!(
            "the database schema is not up to date; run `alertgraph migrate` (or `alertgraph up`) first"
        );
    }
    Ok(())
}

async fn up(
    url: &str,
    db: PgPool,
    demo: bool,
    server: ServerArgs,
    worker: WorkerArgs,
    shared: SharedArgs,
) -> anyhow::Result<()> {
    let mut policy = shared.policy()?;
    migrate(&db).await?;
    let key = match &shared.secret_key {
        Some(text) => SecretKey::from_base64(text).context("ALERTGRAPH_SECRET_KEY")?,
        None => key_file().await?,
    };
    let demo = if demo {
        // The worker calls the simulated provider on this server's own address.
        let own = own_address(server.listen);
        policy = policy.allowing(own.ip());
        seed_demo(&db, &format!("http://{own}")).await?
    } else {
        Demo::Off
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop.clone()));
    let serving = serve(db, server, key.clone(), policy.clone(), demo, stopped.clone());
    let working = work(url, worker, key, policy, stopped);
    tokio::pin!(serving, working);
    // Whichever half ends first (a signal, or a failure such as a port already in use) stops
    // the other, so `up` never lingers as half a process.
    tokio::select! {
        served = &mut serving => {
            let _ = stop.send(true);
            served.and(working.await)
        }
        worked = &mut working => {
            let _ = stop.send(true);
            worked.and(serving.await)
        }
    }
}

/// `ALERTGRAPH_PUBLIC_URL`: an http(s) URL with a host.
fn public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    Ok(url)
}

/// Whether `serve` runs the demo, and whether it ingests the sample alerts when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Demo {
    Off,
    On { ingest_samples: bool },
}

/// Where this process reaches its own server: the listen address, or loopback when that is
/// unspecified (`0.0.0.0`, `::`).
fn own_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        ip if !ip.is_unspecified() => listen,
        std::net::IpAddr::V4(_) => SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, listen.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port())),
    }
}

/// Seeds the demo's provider, rules and documents (once per database; later runs point the
/// provider at `base_url`) and writes an admin key to [`DEMO_KEY_FILE`] unless a valid one is
/// there.
async fn seed_demo(db: &PgPool, base_url: &str) -> anyhow::Result<Demo> {
    let first = domain::demo::seed(db, base_url).await.context("seeding the demo")?;
    let path = std::path::Path::new(DEMO_KEY_FILE);
    // A key file left from another database (dropped, or another DATABASE_URL) is replaced.
    let kept = match tokio::fs::read_to_string(path).await {
        Ok(text) => api_key::KeyCache::default().verify(db, text.trim()).await.is_ok(),
        Err(_) => false,
    };
    if !kept {
        let new = NewKey {
            name: "demo".into(),
            scopes: vec![Scope::Admin],
            key_type: KeyType::Agent,
            allowed_sources: None,
            expires_at: None,
            rate_limit_per_minute: None,
        };
        let (_, secret) =
            api_key::create(db, &new, domain::demo::ACTOR).await.context("the demo API key")?;
        let dir = path.parent().expect("the key file is in a directory");
        tokio::fs::create_dir_all(dir).await.context(DEMO_KEY_FILE)?;
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Readable by its owner only from the start, not after a chmod.
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(path).await.context(DEMO_KEY_FILE)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, secret.as_bytes())
            .await
            .context(DEMO_KEY_FILE)?;
    }
    tracing::info!(
        api_key_file = DEMO_KEY_FILE,
        graphql = %format!("{base_url}/graphql"),
        provider = domain::demo::PROVIDER_NAME,
        "demo mode: query the sample alerts with the admin API key in the file"
    );
    Ok(Demo::On { ingest_samples: first })
}

async fn serve(
    db: PgPool,
    args: ServerArgs,
    key: SecretKey,
    policy: OutboundPolicy,
    demo: Demo,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cfg = server::ServerConfig {
        ingest: IngestSettings {
            dedup_window: Duration::from_secs(args.dedup_window_seconds),
            secrets: WebhookSecrets {
                sentinel: args.sentinel_webhook_secret.map(Secret::new),
                elastic: args.elastic_webhook_secret.map(Secret::new),
                splunk: args.splunk_webhook_secret.map(Secret::new),
            },
        },
        max_body_bytes: args.max_body_bytes,
        graphql_result_cache_bytes: args.graphql_cache_mb.saturating_mul(1 << 20),
        secret_key: Some(key),
        outbound: policy,
        provider_env: std::env::vars().collect(),
        operations_dir: args.tools.operations_dir,
        demo: demo != Demo::Off,
        ..server::ServerConfig::default()
    };
    let cfg = match args.mcp_allowed_hosts {
        Some(hosts) if hosts.iter().any(|host| host == "*") => {
            server::ServerConfig { mcp_allowed_hosts: Vec::new(), ..cfg }
        }
        Some(hosts) => server::ServerConfig { mcp_allowed_hosts: hosts, ..cfg },
        None => {
            let mut hosts = cfg.mcp_allowed_hosts.clone();
            // `public_url` checked that there is a host.
            hosts
                .extend(args.public_url.as_ref().and_then(|url| url.host_str()).map(str::to_owned));
            server::ServerConfig { mcp_allowed_hosts: hosts, ..cfg }
        }
    };
    let state = server::AppState::new(db, cfg).await.context("loading server state")?;
    server::listener::spawn(state.clone()).await.context("listening for configuration changes")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("ALERTGRAPH_LISTEN: cannot listen on {}", args.listen))?;
    tracing::info!(address = %args.listen, "HTTP server listening");
    if demo == (Demo::On { ingest_samples: true }) {
        // After the bind, so that the worker's first calls to the simulated provider wait in
        // the listen queue rather than being refused.
        let ids = server::http::demo::ingest_sample_alerts(&state)
            .await
            .context("ingesting the demo's sample alerts")?;
        tracing::info!(alerts = ids.len(), "demo mode: ingested the sample alerts");
    }
    axum::serve(server::http::without_delay(listener), server::app(state))
        .with_graceful_shutdown(wait_for_stop(stopped))
        .await
        .context("serving HTTP")
}

/// `mcp-stdio`: the MCP server of `serve`, on stdin and stdout, acting with one API key.
async fn mcp_stdio(
    db: PgPool,
    api_key: &str,
    tools: ToolArgs,
    shared: SharedArgs,
) -> anyhow::Result<()> {
    // The secret key lets enrich_indicator decrypt provider credentials; without one (and
    // without `up`'s key file) every other tool still works.
    let key = match &shared.secret_key {
        Some(text) => Some(SecretKey::from_base64(text).context("ALERTGRAPH_SECRET_KEY")?),
        None if std::path::Path::new(SECRET_KEY_FILE).exists() => Some(key_file().await?),
        None => None,
    };
    let cfg = server::ServerConfig {
        secret_key: key,
        outbound: shared.policy()?,
        provider_env: std::env::vars().collect(),
        operations_dir: tools.operations_dir,
        ..server::ServerConfig::default()
    };
    let state = server::AppState::new(db, cfg).await.context("loading server state")?;
    server::listener::spawn(state.clone()).await.context("listening for configuration changes")?;
    state.keys.verify(&state.db, api_key).await.context("ALERTGRAPH_API_KEY")?;
    let schema = server::graphql::schema(state.clone());
    tracing::info!("serving MCP on stdio");
    server::mcp::serve_stdio(server::mcp::McpServer::with_key(state, schema, api_key))
        .await
        .context("serving MCP on stdio")
}

/// The key in ./.alertgraph/secret.key, created on first use. Created under a temporary name
/// and linked into place, so that two processes starting together end up with the same key.
async fn key_file() -> anyhow::Result<SecretKey> {
    let path = std::path::Path::new(SECRET_KEY_FILE);
    if !path.exists() {
        let key = SecretKey::generate();
        let dir = path.parent().expect("the key file is in a directory");
        tokio::fs::create_dir_all(dir).await.context(SECRET_KEY_FILE)?;
        let temporary = dir.join(format!("secret.key.{}", std::process::id()));
        tokio::fs::write(&temporary, key.to_base64()).await.context(SECRET_KEY_FILE)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let owner_only = std::fs::Permissions::from_mode(0o600);
            tokio::fs::set_permissions(&temporary, owner_only).await.context(SECRET_KEY_FILE)?;
        }
        let linked = tokio::fs::hard_link(&temporary, path).await;
        let _ = tokio::fs::remove_file(&temporary).await;
        match linked {
            Ok(()) => tracing::warn!(
                path = SECRET_KEY_FILE,
                "ALERTGRAPH_SECRET_KEY is unset: created a new secret key; back it up, it decrypts stored credentials"
            ),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error).context(SECRET_KEY_FILE),
        }
    }
    let text = tokio::fs::read_to_string(path).await.context(SECRET_KEY_FILE)?;
    SecretKey::from_base64(&text).context(SECRET_KEY_FILE)
}

async fn work(
    url: &str,
    args: WorkerArgs,
    key: SecretKey,
    policy: OutboundPolicy,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if args.worker_concurrency == 0 {
        bail!("ALERTGRAPH_WORKER_CONCURRENCY must be at least 1");
    }
    if args.worker_pool_size < 2 {
        bail!("ALERTGRAPH_WORKER_POOL_SIZE must be at least 2");
    }
    let db = database::connect(url, args.worker_pool_size).await?;
    let client = Outbound::new(policy.clone(), concat!("alertgraph/", env!("CARGO_PKG_VERSION")));
    let options = EnrichOptions {
        failure_ttl: Duration::from_secs(args.enrichment_failure_ttl_seconds),
        ..EnrichOptions::default()
    };
    let env = std::env::vars().collect();
    let deliverer = Deliverer::new(key.clone(), policy);
    let (enricher, _reloading) = Enricher::start(&db, client, key, env, options)
        .await
        .context("loading enrichment providers")?;
    let (dispatcher, _reloading) =
        Dispatcher::start(&db).await.context("loading context documents and agents")?;
    let cfg = worker::WorkerConfig { concurrency: args.worker_concurrency, ..Default::default() };
    let handlers = worker::pipeline(enricher, dispatcher, Arc::new(deliverer));
    let worked = worker::run(db.clone(), cfg, handlers, wait_for_stop(stopped)).await;
    db.close().await;
    worked.context("running the worker")
}

/// Answers `GET /metrics` on `address` until the process stops, for a worker that has no HTTP
/// server of its own.
async fn serve_metrics(
    db: PgPool,
    address: SocketAddr,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("ALERTGRAPH_WORKER_METRICS_LISTEN: cannot listen on {address}"))?;
    tracing::info!(%address, "worker metrics listening");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let db = db.clone();
            async move { server::http::metrics(&db).await }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(server::http::without_delay(listener), app)
            .with_graceful_shutdown(wait_for_stop(stopped))
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error, "the worker's metrics listener stopped");
        }
    });
    Ok(())
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|&stop| stop).await;
}

/// Turns SIGINT or SIGTERM into a stop for everything this process runs.
async fn stop_on_signal(stop: watch::Sender<bool>) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing running work");
    let _ = stop.send(true);
}

/// Where `up` keeps the secret key it generates when ALERTGRAPH_SECRET_KEY is unset.
const SECRET_KEY_FILE: &str = ".alertgraph/secret.key";
/// Who the audit log says made the changes `alertgraph api-key` makes.
const CLI_ACTOR: &str = "command line";
/// Where `up --demo` writes the admin API key it creates for trying the demo.
const DEMO_KEY_FILE: &str = ".alertgraph/demo-api-key";

async fn rotate_secrets(
    db: &PgPool,
    secret_key: Option<String>,
    new_key: Option<String>,
) -> anyhow::Result<()> {
    let (old, from_file) = match secret_key {
        Some(text) => (SecretKey::from_base64(&text).context("ALERTGRAPH_SECRET_KEY")?, false),
        None => {
            let text = tokio::fs::read_to_string(SECRET_KEY_FILE).await.with_context(|| {
                format!("ALERTGRAPH_SECRET_KEY is unset and {SECRET_KEY_FILE} cannot be read")
            })?;
            (SecretKey::from_base64(&text).context(SECRET_KEY_FILE)?, true)
        }
    };
    let new = match new_key {
        Some(text) => SecretKey::from_base64(&text).context("ALERTGRAPH_NEW_SECRET_KEY")?,
        None => SecretKey::generate(),
    };
    let rotated = domain::provider::registry::rotate_secrets(db, &old, &new, CLI_ACTOR)
        .await
        .context("re-encrypting stored secrets (nothing was changed)")?;
    if from_file {
        tokio::fs::write(SECRET_KEY_FILE, new.to_base64()).await.context(SECRET_KEY_FILE)?;
        eprintln!("Re-encrypted {rotated} secret(s); {SECRET_KEY_FILE} now holds the new key.");
    } else {
        eprintln!(
            "Re-encrypted {rotated} secret(s). Set ALERTGRAPH_SECRET_KEY to the new key below in every process."
        );
    }
    println!("{}", new.to_base64());
    Ok(())
}

async fn api_key_command(db: &PgPool, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create {
            name,
            scopes,
            key_type,
            expires_at,
            allowed_sources,
            rate_limit_per_minute,
        } => {
            let scopes = scopes
                .iter()
                .map(|scope| scope.trim().parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()
                .context("--scopes")?;
            let key_type: KeyType = key_type.parse().context("--type")?;
            let allowed_sources = allowed_sources
                .map(|sources| sources.iter().map(|s| s.trim().parse::<Source>()).collect())
                .transpose()
                .context("--allowed-sources")?;
            let new = NewKey {
                name,
                scopes,
                key_type,
                allowed_sources,
                expires_at,
                rate_limit_per_minute,
            };
            let (principal, plaintext) = api_key::create(db, &new, CLI_ACTOR).await?;
            eprintln!(
                "Created API key {:?} ({}). Store it now: it is shown only once.",
                principal.name, principal.prefix
            );
            println!("{plaintext}");
        }
        ApiKeyCommand::List => {
            println!("{:<14} {:<24} {:<7} {:<40} STATE", "PREFIX", "NAME", "TYPE", "SCOPES");
            for key in api_key::list(db).await? {
                let state = match (key.revoked_at, key.expires_at) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, Some(at)) if at <= Utc::now() => format!("expired {at}"),
                    (None, Some(at)) => format!("active until {at}"),
                    (None, None) => "active".to_owned(),
                };
                println!(
                    "{:<14} {:<24} {:<7} {:<40} {state}",
                    key.prefix,
                    key.name,
                    key.key_type,
                    key.scopes.join(",")
                );
            }
        }
        ApiKeyCommand::Revoke { prefix } => {
            if !api_key::revoke(db, &prefix, CLI_ACTOR).await? {
                bail!("no active API key has the prefix {prefix:?}");
            }
            println!("revoked {prefix}");
        }
    }
    Ok(())
}
