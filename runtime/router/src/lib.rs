//! deepseek-router: the canary router. Is: weighted revision split, proxying, per-revision
//! stats and metrics, route reload. Is NOT: anything that loads or runs a model; it depends on
//! no kernel, engine or candle code, so `cargo build -p deepseek-router` stays small.
//!
//! `deepseek-runtime route`: an L7 router in front of a model's revisions. It splits requests
//! between revisions by exact weight (sticky per session header), forwards HTTP, SSE and
//! WebSocket traffic unbuffered, retries connection failures on the revision's other backends,
//! records per-revision outcomes for canary analysis, and reloads its route file live. It
//! ejects failing backends (`health`), bounds what it buffers and how much it runs at once
//! (`admission`), counts streams that fail after their 200 (`body`, `sse_watch`), and drains
//! streams and tunnels on SIGTERM (`deepseek-http`, `tunnel`).
//! The wire contract with the operator is the README's Router section.

pub mod admission;
pub mod body;
pub mod config;
pub mod error;
pub mod guard;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod split;
pub mod sse_watch;
pub mod stats;
pub mod table;
pub mod tunnel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use admission::Admission;
use health::{Health, HealthArgs};
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
    /// Most proxied requests in flight at once; more get a 429.
    #[arg(long, env = "DSR_ROUTER_MAX_CONCURRENT_REQUESTS", default_value_t = admission::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Bytes of request bodies buffered at once across all requests; a body that does not fit
    /// gets a 503.
    #[arg(long, env = "DSR_ROUTER_BODY_BUFFER_BUDGET_BYTES", default_value_t = admission::DEFAULT_BODY_BUFFER_BUDGET_BYTES)]
    pub body_buffer_budget_bytes: usize,
    /// Retry a 500/502/503/504 answer on the revision's next backend (the body is buffered).
    #[arg(long, env = "DSR_ROUTER_RETRY_5XX", default_value_t = true, action = clap::ArgAction::Set)]
    pub retry_5xx: bool,
    /// Passive ejection and active probes (`--eject-*`, `--probe-*`).
    #[command(flatten)]
    pub health: HealthArgs,
    /// Connection limits (`--header-read-timeout-seconds`, `--idle-timeout-seconds`,
    /// `--max-connections`).
    #[command(flatten)]
    pub connections: deepseek_http::ConnArgs,
    /// Auth, TLS, rate limits and the admin port (`/metrics`, `/admin/stats`) on the router,
    /// the cluster's entry point.
    #[command(flatten)]
    pub security: deepseek_security::SecurityArgs,
    /// Browser origins (`https://host[:port]`, comma-separated, `*` for any) allowed to open
    /// WebSockets through the router; upgrades without `Origin` always pass.
    #[arg(long, env = "DSR_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

/// Runs the router until SIGTERM; fails at once when the route file is invalid (a missing one
/// leaves the router unready until it appears).
pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all().build()?.block_on(serve_routes(args))
}

async fn serve_routes(args: RouteArgs) -> anyhow::Result<()> {
    let metrics = RouterMetrics::new().context("registering router metrics")?;
    let (table, bytes) = match reload::load(&args.config)? {
        Some((config, bytes)) => {
            reload::publish_weights(&metrics, None, &config);
            tracing::info!(
                config = %args.config.display(),
                revisions = config.revisions.len(),
                "routes loaded"
            );
            (Some(Table::new(config)), bytes)
        }
        None => {
            tracing::warn!(config = %args.config.display(), "no route file yet: unready until it appears");
            (None, Vec::new())
        }
    };
    let routes = Arc::new(Routes::new(table));
    let security =
        deepseek_security::Security::from_args(&args.security).context("security flags")?;
    security.metrics.register(metrics.registry())?;
    tokio::spawn(reload::watch(
        args.config.clone(),
        routes.clone(),
        metrics.clone(),
        Duration::from_millis(args.reload_ms.max(10)),
        bytes,
    ));
    let health = Arc::new(Health::new(&args.health, metrics.clone()));
    if args.health.probe_interval_ms > 0 {
        tokio::spawn(probe::run(
            routes.clone(),
            health.clone(),
            args.health.probe_path.clone(),
            Duration::from_millis(args.health.probe_interval_ms),
        ));
    }
    let conn_metrics = deepseek_http::ConnMetrics::register(metrics.registry())
        .context("registering connection metrics")?;
    let app = Arc::new(server::App {
        routes,
        stats: Arc::new(Stats::new(metrics.clone())),
        health,
        admission: Admission::new(
            args.max_concurrent_requests,
            args.body_buffer_budget_bytes,
            metrics,
        ),
        max_body_bytes: args.max_body_bytes,
        retry_5xx: args.retry_5xx,
        origins: deepseek_http::OriginPolicy::new(&args.allowed_origins),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, tls = security.tls.is_some(), "router listening");
    let limits = args
        .connections
        .limits(Duration::from_secs(args.shutdown_grace_secs));
    let shutdown = deepseek_http::shutdown_signal;
    let drain = deepseek_http::Drain::new;
    match security.admin_port {
        None => {
            let public = security.protect(server::app(app));
            security
                .serve(listener, public, shutdown(), limits, drain(), conn_metrics)
                .await?;
        }
        Some(port) => {
            let admin_addr = SocketAddr::new(args.listen.ip(), port);
            let admin = tokio::net::TcpListener::bind(admin_addr)
                .await
                .with_context(|| format!("binding the admin port {admin_addr}"))?;
            tracing::info!(addr = %admin.local_addr()?, "admin port: /metrics, /admin/stats");
            let public = security.protect(server::public_app(app.clone()));
            // The admin port's connections are not counted on the public gauges.
            tokio::try_join!(
                security.serve(listener, public, shutdown(), limits, drain(), conn_metrics),
                deepseek_http::serve(
                    admin,
                    server::admin_app(app),
                    shutdown(),
                    limits,
                    drain(),
                    deepseek_http::ConnMetrics::detached(),
                ),
            )?;
        }
    }
    tracing::info!("router stopped");
    Ok(())
}
