//! Shared harness for the controller scenarios: a fake API server, the real operator running
//! against it, fixtures and a bounded poll helper.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use deepseek_crds::DeepSeekDeployment;
use deepseek_operator::controller::{run_with, RunConfig, RunOptions};
use deepseek_operator::leader::LeaseTiming;
use deepseek_operator::metrics::Metrics;
use deepseek_operator::reconcile::labels;
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const NS: &str = "default";
pub const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn dsd(name: &str) -> Value {
    json!({
        "apiVersion": deepseek_crds::API_VERSION,
        "kind": deepseek_crds::KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {
                "name": "smollm2",
                "source": {"url": {"url": "http://models.local/smollm2"}},
                "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA}],
                "format": "gguf"
            },
            "replicas": 1
        }
    })
}

pub async fn fake() -> anyhow::Result<FakeApiServer> {
    let server = FakeApiServer::start().await?;
    server.register_kind::<DeepSeekDeployment>(true);
    Ok(server)
}

pub async fn create(server: &FakeApiServer, body: Value) -> anyhow::Result<DeepSeekDeployment> {
    let api: Api<DeepSeekDeployment> = Api::namespaced(server.client()?, NS);
    Ok(api
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

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
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

pub async fn start_operator(
    server: &FakeApiServer,
    identity: &str,
    leader_election: bool,
) -> anyhow::Result<Operator> {
    let metrics = Metrics::new()?;
    let http_addr = free_addr()?;
    let cfg = RunConfig {
        metrics_addr: http_addr,
        leader_election,
        lease_name: LEASE.into(),
        lease_namespace: NS.into(),
        identity: identity.into(),
        watch_namespace: Some(NS.into()),
        ..RunConfig::default()
    };
    let opts = RunOptions {
        metrics: metrics.clone(),
        lease_timing: fast_timing(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let client = server.client()?;
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

/// Polls `probe` every 50 ms until it yields `Some`, failing after WAIT with `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(WAIT, what, probe).await
}

/// As `eventually`, failing after `wait`.
pub async fn eventually_within<T, F, Fut>(
    wait: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn condition(d: &DeepSeekDeployment, type_: &str) -> Option<(String, String, String)> {
    let c = d.status.as_ref()?.condition(type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn get(server: &FakeApiServer, name: &str) -> Option<DeepSeekDeployment> {
    server.get::<DeepSeekDeployment>(NS, name)
}

/// Runtime Deployments the operator created for `name` (owned by it).
pub fn owned_deployments(server: &FakeApiServer, uid: &str) -> Vec<Deployment> {
    server
        .list::<Deployment>(Some(NS))
        .into_iter()
        .filter(|d| {
            d.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        // The router Deployment carries no revision label.
        .filter(|d| d.labels().contains_key(labels::REVISION))
        .collect()
}

/// Plain HTTP/1.0 GET, enough for the operator's own endpoints.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Waits until the operator has been idle (no reconciliation started) for 500 ms, so a test
/// can snapshot the request log without racing a reconcile already in flight.
pub async fn settle(op: &Operator) -> anyhow::Result<()> {
    let mut last = (op.reconciliations(), tokio::time::Instant::now());
    eventually("the operator to settle", || {
        let now = op.reconciliations();
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        }
        let quiet = last.1.elapsed() >= Duration::from_millis(500);
        async move { quiet.then_some(()) }
    })
    .await
}

pub type TestResult = anyhow::Result<()>;

pub fn revision(d: &Deployment) -> String {
    d.labels()
        .get(labels::REVISION)
        .cloned()
        .unwrap_or_default()
}

pub async fn patch_spec(
    server: &fake_apiserver::FakeApiServer,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
    let api: Api<DeepSeekDeployment> = Api::namespaced(server.client()?, NS);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await?;
    Ok(())
}

pub fn events_with_reason(server: &fake_apiserver::FakeApiServer, reason: &str) -> Vec<Event> {
    server
        .list::<Event>(Some(NS))
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}
