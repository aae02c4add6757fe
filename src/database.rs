//! Finding the database: the configured URL, else the default local server, else (for `up`) a
//! private PostgreSQL cluster started from the installed binaries under `./.alertgraph/pg`, so
//! a newcomer needs no setup. The database itself is created when it is missing.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::process::Command;

/// The local server, over loopback, where TLS would protect nothing and costs a fifth of a
/// read-heavy workload's CPU.
const DEFAULT_URL: &str = "postgres://127.0.0.1:5432/alertgraph?sslmode=disable";
const DATABASE_NAME: &str = "alertgraph";
const EMBEDDED_DIR: &str = ".alertgraph/pg";
/// The role the private cluster is initialized with.
const EMBEDDED_USER: &str = "alertgraph";

/// A private cluster this process started and must stop.
#[derive(Debug)]
pub(crate) struct Embedded {
    data_dir: PathBuf,
}

impl Embedded {
    pub(crate) async fn stop(self) {
        let data_dir = path_str(&self.data_dir);
        if let Ok(mut command) =
            pg_command("pg_ctl", &["stop", "-m", "fast", "-D", &data_dir]).await
        {
            let _ = command.stdout(std::process::Stdio::null()).status().await;
        }
    }
}

/// Returns the URL to use, with the private cluster it started if it had to.
pub(crate) async fn resolve(
    configured: Option<&str>,
    may_start_embedded: bool,
) -> anyhow::Result<(String, Option<Embedded>)> {
    if let Some(url) = configured {
        PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
        let url = with_default_user(url);
        ensure_database(&url).await?;
        return Ok((url, None));
    }
    if tokio::net::TcpStream::connect("127.0.0.1:5432").await.is_ok() {
        let url = with_default_user(DEFAULT_URL);
        ensure_database(&url).await?;
        return Ok((url, None));
    }
    let data_dir = std::env::current_dir()?.join(EMBEDDED_DIR);
    if !may_start_embedded {
        if data_dir.join("postmaster.pid").exists() {
            let url = embedded_url(&data_dir);
            return Ok((url, None));
        }
        bail!(
            "DATABASE_URL is unset and no PostgreSQL answers on 127.0.0.1:5432; \
             set DATABASE_URL or run `alertgraph up`, which can start a private cluster"
        );
    }
    let embedded = start_embedded(&data_dir).await?;
    let url = embedded_url(&data_dir);
    ensure_database(&url).await?;
    Ok((url, Some(embedded)))
}

/// Fills in the user of a URL that names none, the way libpq does (`PGUSER`, else the login
/// name); sqlx would otherwise connect as `anonymous`.
fn with_default_user(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let has_user =
        !parsed.username().is_empty() || parsed.query_pairs().any(|(key, _)| key == "user");
    if has_user {
        return url.to_owned();
    }
    let user = ["PGUSER", "USER", "LOGNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "postgres".to_owned());
    if parsed.set_username(&user).is_err() {
        return url.to_owned();
    }
    parsed.to_string()
}

/// A pool of `pool_size` connections, all opened at start (in the background) and kept: a
/// connection opened under load (TLS, authentication, a new backend, cold statement caches)
/// stalls the requests waiting for it; measured, it made the dispatch p99 4–5× its median.
pub(crate) async fn connect(url: &str, pool_size: u32) -> anyhow::Result<PgPool> {
    domain::store::pool_options(pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("DATABASE_URL: cannot connect to {}", redact(url)))
}

/// Creates the URL's database if it does not exist, connecting to the server's `postgres`
/// database to do so.
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options.get_database().unwrap_or(DATABASE_NAME).to_owned();
    if options.clone().connect().await.is_ok() {
        return Ok(());
    }
    let mut admin = options
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("DATABASE_URL: cannot connect to {}", redact(url)))?;
    if !database_exists(&mut admin, &name).await? {
        let create = format!("create database \"{}\"", name.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another command (`up` and `api-key create` started together, say) created it
            // first: the catalog's unique index refuses the second `create database`.
            Err(_) if database_exists(&mut admin, &name).await? => {}
            Err(error) => return Err(error.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

async fn database_exists(admin: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(admin)
        .await
}

fn embedded_url(data_dir: &Path) -> String {
    let socket_dir = data_dir.join("run");
    format!("postgres://{EMBEDDED_USER}@localhost/{DATABASE_NAME}?host={}", path_str(&socket_dir))
}

/// Initializes (first time) and starts the private cluster. It listens only on a Unix socket
/// inside its own directory, so it cannot collide with another server.
async fn start_embedded(data_dir: &Path) -> anyhow::Result<Embedded> {
    let socket_dir = data_dir.join("run");
    if !data_dir.join("PG_VERSION").exists() {
        tracing::info!(path = %data_dir.display(), "no PostgreSQL found: creating a private cluster");
        tokio::fs::create_dir_all(data_dir).await?;
        hand_to_postgres_user(data_dir).await?;
        let status = pg_command(
            "initdb",
            &["-D", &path_str(data_dir), "-U", EMBEDDED_USER, "-A", "trust", "-E", "UTF8"],
        )
        .await?
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
        if !status.success() {
            bail!("initdb failed for {}", data_dir.display());
        }
    }
    tokio::fs::create_dir_all(&socket_dir).await?;
    hand_to_postgres_user(&socket_dir).await?;
    if data_dir.join("postmaster.pid").exists() {
        tracing::info!("reusing the private PostgreSQL cluster that is already running");
        return Ok(Embedded { data_dir: data_dir.to_owned() });
    }
    let options =
        format!("-c listen_addresses='' -c unix_socket_directories='{}'", path_str(&socket_dir));
    let log = data_dir.join("server.log");
    let status = pg_command(
        "pg_ctl",
        &["start", "-w", "-D", &path_str(data_dir), "-l", &path_str(&log), "-o", &options],
    )
    .await?
    .stdout(std::process::Stdio::null())
    .status()
    .await?;
    if !status.success() {
        bail!("pg_ctl could not start the private cluster; see {}", log.display());
    }
    tracing::info!(path = %data_dir.display(), "started a private PostgreSQL cluster");
    Ok(Embedded { data_dir: data_dir.to_owned() })
}

/// PostgreSQL refuses to run as root. When we are root, the cluster belongs to the `postgres`
/// system user and its commands run as that user.
fn running_as_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root")
        || std::fs::metadata("/proc/self").is_ok_and(|meta| {
            use std::os::unix::fs::MetadataExt;
            meta.uid() == 0
        })
}

async fn hand_to_postgres_user(path: &Path) -> anyhow::Result<()> {
    if running_as_root() {
        let status =
            Command::new("chown").args(["-R", "postgres:", &path_str(path)]).status().await?;
        if !status.success() {
            bail!("cannot give {} to the postgres user; set DATABASE_URL instead", path.display());
        }
    }
    Ok(())
}

/// Finds a PostgreSQL program on PATH or in Debian's versioned directories.
async fn pg_command(program: &str, args: &[&str]) -> anyhow::Result<Command> {
    let binary = find_pg_binary(program).with_context(|| {
        format!("DATABASE_URL is unset, no PostgreSQL answers on 127.0.0.1:5432, and {program} is not installed")
    })?;
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(binary);
        command
    } else {
        Command::new(binary)
    };
    command.args(args);
    Ok(command)
}

fn find_pg_binary(program: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin").join(program)))
            .filter(|candidate| candidate.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_user_gets_the_login_user_and_an_explicit_user_is_kept() {
        let filled = url::Url::parse(&with_default_user(DEFAULT_URL)).unwrap();
        assert!(!filled.username().is_empty());
        assert_eq!(filled.path(), "/alertgraph");
        assert_eq!(filled.query(), Some("sslmode=disable"));
        let explicit = "postgres://alice:secret@db.internal:5433/alerts";
        assert_eq!(with_default_user(explicit), explicit);
    }

    #[test]
    fn passwords_are_redacted_from_messages() {
        assert_eq!(redact("postgres://alice:secret@db:5432/x"), "postgres://alice:***@db:5432/x");
    }
}
