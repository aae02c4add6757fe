//! The `alertgraph` binary: reads configuration, sets up tracing, and runs one subcommand.
//! Everything it starts lives in the `server`, `worker` and `domain` crates.

mod cli;
mod database;

use std::io::IsTerminal;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the pipeline allocates and frees many small JSON values
/// across threads, where glibc's allocator spent a tenth of the worker's CPU in benchmarks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("alertgraph: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries command output such as a new API key), filtered by
/// `RUST_LOG`, as JSON when `ALERTGRAPH_LOG_FORMAT=json`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info,rmcp=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("ALERTGRAPH_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
