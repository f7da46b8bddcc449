//! The operator under test, in process: started on a test namespace with a chosen client and
//! configuration, stopped gracefully or aborted as a crashed pod would be.

use std::net::SocketAddr;
use std::time::Duration;

use deepseek_operator::controller::{run_with, RunConfig, RunOptions};
use deepseek_operator::leader::LeaseTiming;
use deepseek_operator::metrics::Metrics;
use kube::Client;
use tokio::sync::oneshot;

use super::{Cluster, WAIT};

/// A running operator; dropping `stop` shuts it down gracefully, `abort` kills it (no lease
/// release, no cleanup), as a crashed pod would.
pub struct Operator {
    pub metrics: Metrics,
    pub identity: String,
    pub http_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    pub fn reconciliations(&self) -> u64 {
        self.metrics.reconciliations.get()
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task).await???;
        Ok(())
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

pub const LEASE: &str = "deepseek-operator-leader";

/// Short enough for a failover within a test, long enough for a loaded CI machine.
pub fn fast_timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
    }
}

pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Starts the real controller on the test namespace with a recorded admin client.
pub async fn start_operator(
    cluster: &Cluster,
    identity: &str,
    leader_election: bool,
) -> anyhow::Result<Operator> {
    let client = cluster.recorded_client()?;
    start_operator_with(cluster, client, identity, leader_election, |_| {}).await
}

/// As `start_operator`, with `client` and a chance to adjust the configuration.
pub async fn start_operator_with(
    cluster: &Cluster,
    client: Client,
    identity: &str,
    leader_election: bool,
    adjust: impl FnOnce(&mut RunConfig),
) -> anyhow::Result<Operator> {
    let metrics = Metrics::new()?;
    let http_addr = free_addr()?;
    let mut cfg = RunConfig {
        metrics_addr: http_addr,
        leader_election,
        lease_name: LEASE.into(),
        lease_namespace: cluster.ns.clone(),
        identity: identity.into(),
        watch_namespace: Some(cluster.ns.clone()),
        // kwok's router pods are Ready but run no router: nothing answers /admin/stats, so a
        // revision leaving the routes is held only briefly (the rollout harness runs real
        // routers and keeps the default).
        unreadable_router_wait: Duration::from_secs(3),
        ..RunConfig::default()
    };
    adjust(&mut cfg);
    let opts = RunOptions {
        metrics: metrics.clone(),
        lease_timing: fast_timing(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_with(client, cfg, opts, async move {
            let _ = rx.await;
        })
        .await
    });
    Ok(Operator {
        metrics,
        identity: identity.into(),
        http_addr,
        stop: Some(tx),
        task,
    })
}
