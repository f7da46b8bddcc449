//! deepseek-router: the canary router. Is: weighted revision split, proxying, per-revision
//! stats and metrics, route reload. Is NOT: anything that loads or runs a model; it depends on
//! no kernel, engine or candle code, so `cargo build -p deepseek-router` stays small.
//!
//! `deepseek-runtime route`: an L7 router in front of a model's revisions. It splits requests
//! between revisions by exact weight (sticky per session header), forwards HTTP, SSE and
//! WebSocket traffic unbuffered, retries connection failures on the revision's other backends,
//! records per-revision outcomes for canary analysis, and reloads its route file live.
//! The wire contract with the operator is the README's Router section.

pub mod body;
pub mod config;
pub mod error;
pub mod guard;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod split;
pub mod stats;
pub mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use metrics::RouterMetrics;
use reload::Routes;
use stats::Stats;
use table::Table;

#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// Route file (routes.yaml: revisions, weights, backends); re-read when it changes.
    #[arg(long, env = "DSR_ROUTE_CONFIG")]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "DSR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Worker threads of the async runtime; all cores when omitted.
    #[arg(long, env = "DSR_ROUTER_THREADS")]
    pub threads: Option<usize>,
    /// How often the route file is checked for changes, in milliseconds.
    #[arg(long, env = "DSR_ROUTE_RELOAD_MS", default_value_t = 500)]
    pub reload_ms: u64,
    /// Largest request body in bytes (buffered so a failed connect can be retried; 413 beyond).
    #[arg(long, env = "DSR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "DSR_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Browser origins (`https://host[:port]`, comma-separated, `*` for any) allowed to open
    /// WebSockets through the router; upgrades without `Origin` always pass.
    #[arg(long, env = "DSR_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

/// Runs the router until SIGTERM; fails at once when the route file is missing or invalid.
pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all().build()?.block_on(serve_routes(args))
}

async fn serve_routes(args: RouteArgs) -> anyhow::Result<()> {
    let (config, bytes) = reload::load(&args.config)?;
    let metrics = RouterMetrics::new().context("registering router metrics")?;
    reload::publish_weights(&metrics, None, &config);
    tracing::info!(
        config = %args.config.display(),
        revisions = config.revisions.len(),
        "routes loaded"
    );
    let routes = Arc::new(Routes::new(Table::new(config)));
    tokio::spawn(reload::watch(
        args.config.clone(),
        routes.clone(),
        metrics.clone(),
        Duration::from_millis(args.reload_ms.max(10)),
        bytes,
    ));
    let app = Arc::new(server::App {
        routes,
        stats: Arc::new(Stats::new(metrics)),
        max_body_bytes: args.max_body_bytes,
        origins: deepseek_http::OriginPolicy::new(&args.allowed_origins),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "router listening");
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    server::serve(listener, server::app(app), grace).await?;
    Ok(())
}
