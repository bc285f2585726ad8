//! `memos`: memos reconciled to files, with an HTTP API.
//!
//! ```text
//! cargo run --release -p memos -- --directory /tmp/memos --listen 127.0.0.1:8080
//! cargo run --release -p memos --features etcd -- --directory /tmp/memos-b --listen 127.0.0.1:8081 \
//!     --etcd http://127.0.0.1:2379
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// mimalloc: in the benchmark harness it made reconciler_1m 8–10% faster
/// with a quarter less peak RSS, and the status-index row about 1.8×
/// faster (docs/benchmarks.md). The libraries never choose an allocator;
/// this binary does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Memos kept in statedb and reconciled to files in a directory.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory the memo files are written to (created if missing).
    #[arg(long)]
    directory: PathBuf,
    /// Address to serve HTTP on; must be a loopback address. Port 0 picks
    /// a free port (the bound address is printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Time between full reconciliations (prune strays, repair drift); 0 disables.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    full_reconciliation_interval: Duration,
    /// First retry delay of a failed write.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    retry_backoff_min: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    retry_backoff_max: Duration,
    /// Adopt a non-empty directory that has no memos marker file. Files
    /// already there are foreign: kept, never pruned.
    #[arg(long)]
    force: bool,
    /// Where memos are stored durably (an embedded redb database). Default:
    /// beside the directory, `<parent>/.<name>.memos-state`; never inside it.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Most memos kept (a new one past it gets 507).
    #[arg(long, default_value_t = 10_000)]
    max_memos: usize,
    /// Most bytes of memo content in all (a write past it gets 507).
    #[arg(long, default_value_t = 256 << 20)]
    max_total_bytes: usize,
    /// Keep the memos in etcd at this URL (repeat or comma-separate for
    /// several endpoints) instead of the embedded store: every instance
    /// pointed at the same etcd reconciles the same memos into its own
    /// directory. Files written are still recorded in --state-dir.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// The etcd key prefix of the memos.
    #[arg(long, default_value = "/memos/")]
    etcd_prefix: String,
    /// How long a client may take to send a request's headers before the
    /// connection is closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Most client connections open at once (more wait to be accepted).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
}

/// How long open connections may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!(
            "--listen {}: only loopback addresses are allowed",
            args.listen
        ));
    }
    let opts = memos::Options {
        directory: args.directory,
        force: args.force,
        state_dir: args.state_dir,
        max_memos: args.max_memos,
        max_total_bytes: args.max_total_bytes,
        full_reconciliation_interval: args.full_reconciliation_interval,
        retry_backoff_min: args.retry_backoff_min,
        retry_backoff_max: args.retry_backoff_max,
        etcd: args.etcd,
        etcd_prefix: args.etcd_prefix,
    };
    if args.max_connections == 0 {
        return Err("--max-connections must be at least 1".into());
    }
    let (app, lifecycle) = memos::build(&opts).await.map_err(|e| e.to_string())?;
    lifecycle.start().await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, directory = %opts.directory.display(), "memos started");
    // On a signal, open change streams end at once (with a final line),
    // in-flight requests get a grace period to finish, then the server
    // stops regardless (a client that never finishes cannot hold
    // shutdown).
    let (stop_streams, streams_stopped) = statedb::Watch::channel();
    let limits = memos::ServeLimits {
        header_timeout: args.header_timeout,
        max_connections: args.max_connections,
        grace: SHUTDOWN_GRACE,
    };
    let router = memos::router_with_shutdown(app.clone(), addr, streams_stopped);
    memos::serve(listener, router, limits, async move {
        shutdown_signal().await;
        tracing::info!("signal received: stopping");
        stop_streams.close();
    })
    .await;
    tracing::info!("shutting down");
    memos::stopped(&app);
    lifecycle.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
