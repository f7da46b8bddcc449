//! The controller runtime: kube-runtime `Controller` over DeepSeekDeployments owning their
//! Deployments, Services, ConfigMaps and PDBs and watching their pods; leader election gates
//! it; `/metrics`, `/healthz`, `/readyz` are served beside it. `reconcile` here is tracing,
//! timing and dispatch only; the work is in `reconcile/`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use deepseek_crds::DeepSeekDeployment;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::cache::{self, Stores};
use crate::context::Context;
use crate::desired::BuildConfig;
use crate::error::Error;
use crate::http::{self, HttpState};
use crate::leader::{LeaderElector, LeaseSettings, LeaseTiming};
use crate::metrics::Metrics;
use crate::reconcile::{self, labels};

/// Everything `deepseek-operator run` configures (the contract with `main.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Act only while holding the Lease `lease_namespace/lease_name`.
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// Namespace of the leader-election Lease (the operator's own).
    pub lease_namespace: String,
    /// Holder identity written to the Lease (the pod name).
    pub identity: String,
    /// Watch only this namespace; all namespaces when `None`.
    pub watch_namespace: Option<String>,
    /// Inputs of the desired-state builders (default runtime image, port).
    pub build: BuildConfig,
    /// Interval between two looks at a running canary.
    pub analysis_interval: std::time::Duration,
    /// How long a revision leaving the routes waits for a router that cannot be read.
    pub unreadable_router_wait: std::time::Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            leader_election: false,
            lease_name: "deepseek-operator".into(),
            lease_namespace: "default".into(),
            identity: "deepseek-operator".into(),
            watch_namespace: None,
            build: BuildConfig::default(),
            analysis_interval: crate::context::DEFAULT_ANALYSIS_INTERVAL,
            unreadable_router_wait: crate::context::DEFAULT_UNREADABLE_ROUTER_WAIT,
        }
    }
}

/// What `main` leaves at defaults and tests change: the metrics registry they read and
/// faster lease timings.
#[derive(Clone)]
pub struct RunOptions {
    pub metrics: Metrics,
    pub lease_timing: LeaseTiming,
}

impl RunOptions {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            metrics: Metrics::new()?,
            lease_timing: LeaseTiming::default(),
        })
    }
}

/// Runs against the cluster of the ambient kubeconfig / service account until SIGTERM/Ctrl-C.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let opts = RunOptions::new()?;
    let client = counting_client(kube::Config::infer().await?, &opts.metrics)?;
    run_with(client, cfg, opts, shutdown_signal()).await
}

/// A client that counts every request it sends in `metrics` (API_REQUESTS), so the API cost
/// of reconciling is visible on `/metrics`.
pub fn counting_client(config: kube::Config, metrics: &Metrics) -> anyhow::Result<Client> {
    let metrics = metrics.clone();
    let count =
        tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
            metrics.api_request(req.method().as_str(), req.uri().query());
            req
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs with a given client until `shutdown` completes (tests pass their own).
pub async fn run_with(
    client: Client,
    cfg: RunConfig,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = opts.metrics;
    let ready = Arc::new(AtomicBool::new(false));
    let (addr, http_task) = http::serve(
        cfg.metrics_addr,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
    )
    .await?;
    let http_task = AbortOnDrop(http_task);
    tracing::info!(%addr, identity = %cfg.identity, "serving /metrics, /healthz, /readyz");
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    client.apiserver_version().await?;
    ready.store(true, Ordering::Relaxed);
    let reporter = Reporter {
        controller: "deepseek-operator".into(),
        instance: Some(cfg.identity.clone()),
    };
    let mut ctx = Context::new(client.clone(), metrics.clone(), reporter, cfg.build.clone());
    ctx.analysis_interval = cfg.analysis_interval;
    ctx.unreadable_router_wait = cfg.unreadable_router_wait;
    let ctx = Arc::new(ctx);
    if cfg.leader_election {
        let lease = LeaseSettings {
            name: cfg.lease_name.clone(),
            namespace: cfg.lease_namespace.clone(),
            identity: cfg.identity.clone(),
            timing: opts.lease_timing,
        };
        run_while_leading(ctx, &cfg, lease, stop_rx).await;
    } else {
        run_controller(ctx, cfg.watch_namespace.clone(), wait_true(stop_rx)).await;
    }
    drop(http_task);
    Ok(())
}

/// Aborts a background task when its owner goes away, however that happens.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Runs the controller only while this replica holds the Lease; stops it when leadership
/// is lost and waits to regain it.
async fn run_while_leading(
    ctx: Arc<Context>,
    cfg: &RunConfig,
    lease: LeaseSettings,
    stop: watch::Receiver<bool>,
) {
    let (leading, task) = LeaderElector::new(ctx.client.clone(), lease.clone()).spawn();
    // Dropping this future (a crash, an abort) must stop renewing too: the lease then
    // expires and a standby takes over.
    let task = AbortOnDrop(task);
    loop {
        let mut want = leading.clone();
        tokio::select! {
            _ = wait_true(stop.clone()) => break,
            r = want.wait_for(|l| *l) => if r.is_err() { break },
        }
        ctx.metrics.is_leader.set(1);
        tracing::info!(identity = %cfg.identity, "leading: starting controller");
        let (mut lost, stop_now) = (leading.clone(), stop.clone());
        let until = async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => {}
                _ = wait_true(stop_now) => {}
            }
        };
        run_controller(ctx.clone(), cfg.watch_namespace.clone(), until).await;
        ctx.metrics.is_leader.set(0);
        tracing::info!(identity = %cfg.identity, "controller stopped");
        if *stop.borrow() {
            break;
        }
    }
    drop(task);
    if let Err(e) = LeaderElector::new(ctx.client.clone(), lease)
        .release()
        .await
    {
        tracing::warn!(error = %e, "could not release the lease");
    }
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Controller over DeepSeekDeployments, fed by shared reflectors: each owned kind's watch
/// both triggers reconciles of the owner and fills the store the reconciler reads (so a
/// reconcile lists nothing). Nodes are cached for their zone label only and trigger nothing.
async fn run_controller(
    ctx: Arc<Context>,
    ns: Option<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&labels::managed_selector());
    let (deployments, deployment_events) = cache::reflect(
        api::<Deployment>(&client, &ns),
        owned.clone(),
        cache::keep_all,
    );
    let (services, service_events) =
        cache::reflect(api::<Service>(&client, &ns), owned.clone(), cache::keep_all);
    let (config_maps, config_map_events) = cache::reflect(
        api::<ConfigMap>(&client, &ns),
        owned.clone(),
        cache::keep_all,
    );
    let (pdbs, pdb_events) = cache::reflect(
        api::<PodDisruptionBudget>(&client, &ns),
        owned.clone(),
        cache::keep_all,
    );
    let (cron_jobs, cron_job_events) =
        cache::reflect(api::<CronJob>(&client, &ns), owned.clone(), cache::keep_all);
    let (pods, pod_events) = cache::reflect(api::<Pod>(&client, &ns), owned, cache::keep_all);
    let (nodes, node_events) = cache::reflect(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        cache::strip_node,
    );
    let _nodes_task = AbortOnDrop(tokio::spawn(node_events.for_each(|e| async move {
        if let Err(e) = e {
            tracing::debug!(error = %e, "node watch");
        }
    })));
    let stores = Stores {
        deployments,
        services,
        config_maps,
        pdbs,
        cron_jobs,
        pods,
        nodes,
    };
    let ctx = Arc::new(ctx.with_stores(stores));
    // Bursts of child events (a rollout touches many objects) make one reconcile, not dozens.
    let config = controller::Config::default().debounce(RECONCILE_DEBOUNCE);
    Controller::new(
        api::<DeepSeekDeployment>(&client, &ns),
        watcher::Config::default(),
    )
    .with_config(config)
    .owns_stream(deployment_events)
    .owns_stream(service_events)
    .owns_stream(config_map_events)
    .owns_stream(pdb_events)
    .owns_stream(cron_job_events)
    .watches_stream(pod_events, pod_owner)
    .graceful_shutdown_on(stop)
    .run(reconcile_one, error_policy, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "controller event");
        }
    })
    .await;
}

/// How long the Controller gathers triggers of one object before reconciling it.
pub const RECONCILE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(200);

/// Runtime pods carry their DeepSeekDeployment's name in a label.
fn pod_owner(pod: Pod) -> Option<ObjectRef<DeepSeekDeployment>> {
    let name = pod.labels().get(labels::DEPLOYMENT)?.clone();
    Some(ObjectRef::new(&name).within(&pod.namespace()?))
}

fn key(dsd: &DeepSeekDeployment) -> String {
    format!("{}/{}", dsd.namespace().unwrap_or_default(), dsd.name_any())
}

async fn reconcile_one(dsd: Arc<DeepSeekDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!("reconcile", name = %dsd.name_any(), namespace = %dsd.namespace().unwrap_or_default(), generation = dsd.metadata.generation.unwrap_or(0));
    let start = Instant::now();
    let result = reconcile::reconcile(&dsd, &ctx)
        .instrument(span.clone())
        .await;
    let took = start.elapsed();
    ctx.metrics
        .observe(took, result.as_ref().err().map(Error::kind));
    let _guard = span.enter();
    match &result {
        Ok(action) => {
            ctx.clear_failures(&key(&dsd));
            tracing::info!(took_ms = took.as_millis() as u64, ?action, "reconciled");
        }
        Err(e) => {
            tracing::warn!(took_ms = took.as_millis() as u64, error = %e, kind = e.kind(), "reconcile failed")
        }
    }
    result
}

fn error_policy(dsd: Arc<DeepSeekDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff_after_failure(&key(&dsd));
    tracing::debug!(name = %dsd.name_any(), kind = err.kind(), wait_ms = wait.as_millis() as u64, "requeue after failure");
    Action::requeue(wait)
}
