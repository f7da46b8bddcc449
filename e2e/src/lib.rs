//! Harness of the end-to-end tests: connect to the cluster in KUBECONFIG (or skip cleanly),
//! install the CRD, make a throwaway namespace, run the real operator in-process against it.
//! The delivery checks (Helm chart, Dockerfiles, CRD reference) live in the modules below.

pub mod chat;
pub mod crd_docs;
pub mod dockerfile;
pub mod helm;
pub mod install;
pub mod repo;

use std::future::Future;
use std::time::Duration;

use deepseek_crds::DeepSeekDeployment;
use deepseek_operator::controller::{run_with, RunConfig, RunOptions};
use deepseek_operator::leader::LeaseTiming;
use deepseek_operator::metrics::Metrics;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::sync::oneshot;

/// Bound of every wait against a real cluster (image pulls are not awaited).
pub const WAIT: Duration = Duration::from_secs(90);
pub const SKIP: &str = "skipping: no cluster (KUBECONFIG unset/unreachable)";

/// A client for the cluster in KUBECONFIG, or `None` (after printing why) when there is none.
pub async fn cluster() -> Option<Client> {
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) => {
            println!("{SKIP}: {e}");
            return None;
        }
    };
    let client = Client::try_from(config).ok()?;
    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
        Ok(Ok(_)) => Some(client),
        Ok(Err(e)) => {
            println!("{SKIP}: {e}");
            None
        }
        Err(_) => {
            println!("{SKIP}: API server did not answer within 5s");
            None
        }
    }
}

/// Installs (server-side applies) the CRD and waits until it is established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = deepseek_crds::crd::crd();
    let name = format!("{}.{}", deepseek_crds::PLURAL, deepseek_crds::GROUP);
    api.patch(
        &name,
        &PatchParams::apply("deepseek-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    eventually("CRD established", || async {
        let c = api.get(&name).await.ok()?;
        let conds = c.status?.conditions?;
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await
}

/// A fresh namespace for one test; `cleanup` deletes it.
pub async fn namespace(client: &Client, prefix: &str) -> anyhow::Result<String> {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000;
    let name = format!("{prefix}-{suffix}");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}}))?,
    )
    .await?;
    Ok(name)
}

pub async fn cleanup(client: &Client, namespace: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(namespace, &DeleteParams::background()).await;
}

pub struct Operator {
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
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

pub const LEASE: &str = "deepseek-operator-e2e";

/// Runs the real operator in-process, scoped to `namespace` (its Lease lives there too).
pub fn start_operator(
    client: &Client,
    namespace: &str,
    identity: &str,
    leader_election: bool,
) -> anyhow::Result<Operator> {
    let metrics = Metrics::new()?;
    let cfg = RunConfig {
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        leader_election,
        lease_name: LEASE.into(),
        lease_namespace: namespace.into(),
        identity: identity.into(),
        watch_namespace: Some(namespace.into()),
        // On the local control plane kwok's router pods run no router, so /admin/stats never
        // answers: hold a revision leaving the routes only briefly for such routers.
        unreadable_router_wait: Duration::from_secs(5),
        ..RunConfig::default()
    };
    let timing = LeaseTiming {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    };
    let opts = RunOptions {
        metrics: metrics.clone(),
        lease_timing: timing,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let client = client.clone();
    let task = tokio::spawn(async move {
        run_with(client, cfg, opts, async move {
            let _ = rx.await;
        })
        .await
    });
    Ok(Operator {
        metrics,
        stop: Some(tx),
        task,
    })
}

pub fn dsd(name: &str, namespace: &str) -> anyhow::Result<DeepSeekDeployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": deepseek_crds::API_VERSION, "kind": deepseek_crds::KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "smollm2", "source": {"url": {"url": "http://models.invalid/smollm2"}},
                "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf",
                    "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}],
                "format": "gguf"},
            "runtime": {"gpus": 0},
            "replicas": 1
        }
    }))?)
}

/// Polls every 250 ms until `probe` yields `Some`, failing after WAIT.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
