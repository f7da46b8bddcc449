//! A small cluster for rollout scenarios: the fake API server, the real operator, the real
//! router binary (`deepseek-runtime route`, two processes, registered as router pods on
//! 127.0.0.1), one HTTP backend per revision (healthy, or answering 500 when the revision's
//! image says `bad`), a "kubelet" loop marking Deployments ready and turning the routes
//! ConfigMap into a local routes file with 127.0.0.1 backends, and a client sending traffic
//! through the routers and recording which revision answered each request.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus};
use deepseek_operator::controller::{run_with, RunConfig, RunOptions};
use deepseek_operator::desired::router::router_selector;
use deepseek_operator::leader::LeaseTiming;
use deepseek_operator::metrics::Metrics;
use deepseek_operator::reconcile::labels;
use fake_apiserver::FakeApiServer;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[path = "../common/mod.rs"]
mod common;
mod kubelet;
use kubelet::kubelet;

pub const NS: &str = "default";
pub const NAME: &str = "chat";
pub const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Bound of every wait in these scenarios.
pub const WAIT: Duration = Duration::from_secs(90);

/// The built router: `target/<profile>/deepseek-runtime`, next to this test's `deps/` folder.
pub fn router_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("cannot locate the target directory from {exe:?}"))?;
    let bin = dir.join(format!("deepseek-runtime{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.exists(),
        "the router binary {bin:?} is missing: build it first with `cargo build -p deepseek-runtime` \
         (`cargo test --workspace --all-targets`, as `make test` runs it, builds it too)"
    );
    Ok(bin)
}

pub fn dsd(image: &str, rollout: Value) -> Value {
    json!({
        "apiVersion": deepseek_crds::API_VERSION,
        "kind": deepseek_crds::KIND,
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "model": {
                "name": "smollm2",
                "source": {"url": {"url": "http://models.local/smollm2"}},
                "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA}],
                "format": "gguf"
            },
            "runtime": {"image": image},
            "replicas": 2,
            "rollout": rollout,
        }
    })
}

/// One answered (or failed) request: the HTTP status (0: no response) and who answered.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: u16,
    pub revision: Option<String>,
}

struct Backend {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

pub struct Cluster {
    pub server: FakeApiServer,
    operator_stop: Option<oneshot::Sender<()>>,
    operator: tokio::task::JoinHandle<anyhow::Result<()>>,
    backends: Arc<Mutex<BTreeMap<String, Backend>>>,
    routers: Vec<Child>,
    pub router_addrs: Vec<SocketAddr>,
    routes_file: PathBuf,
    _dir: tempfile::TempDir,
    kubelet: tokio::task::JoinHandle<()>,
    pub outcomes: Arc<Mutex<Vec<Outcome>>>,
    traffic_on: Arc<AtomicBool>,
    traffic: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &mut self.routers {
            let _ = r.kill();
            let _ = r.wait();
        }
        self.kubelet.abort();
        self.operator.abort();
        for t in &self.traffic {
            t.abort();
        }
        if let Ok(b) = self.backends.lock() {
            for backend in b.values() {
                backend.task.abort();
            }
        }
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// A chat backend that names its revision; a `bad` one answers 500 to chat requests.
async fn start_backend(revision: String, bad: bool) -> anyhow::Result<Backend> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let rev = revision.clone();
    let chat = move || {
        let rev = rev.clone();
        async move {
            let status = if bad {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            let body = json!({"revision": rev, "object": "chat.completion", "choices": []});
            (status, [("x-revision", rev)], axum::Json(body))
        }
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/readyz", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Backend { url, task })
}

impl Cluster {
    /// Starts everything and creates the resource; returns once its first revision serves
    /// through the routers.
    pub async fn start(body: Value) -> anyhow::Result<Self> {
        let bin = router_binary()?;
        let server = FakeApiServer::start().await?;
        server.register_kind::<DeepSeekDeployment>(true);
        let (operator_stop, operator) = start_operator(&server)?;
        let dir = tempfile::tempdir()?;
        let routes_file = dir.path().join("routes.yaml");
        let api: Api<DeepSeekDeployment> = Api::namespaced(server.client()?, NS);
        api.create(&PostParams::default(), &serde_json::from_value(body)?)
            .await?;
        let backends = Arc::new(Mutex::new(BTreeMap::new()));
        let kubelet_client = server.client()?;
        let mut cluster = Cluster {
            kubelet: tokio::spawn(kubelet(
                kubelet_client,
                backends.clone(),
                routes_file.clone(),
            )),
            server,
            operator_stop: Some(operator_stop),
            operator,
            backends,
            routers: Vec::new(),
            router_addrs: Vec::new(),
            routes_file,
            _dir: dir,
            outcomes: Arc::new(Mutex::new(Vec::new())),
            traffic_on: Arc::new(AtomicBool::new(true)),
            traffic: Vec::new(),
        };
        eventually("the first routes file", || async {
            cluster.routes_file.exists().then_some(())
        })
        .await?;
        for i in 0..2 {
            cluster.start_router(&bin, i).await?;
        }
        Ok(cluster)
    }

    async fn start_router(&mut self, bin: &PathBuf, i: usize) -> anyhow::Result<()> {
        let addr = free_addr()?;
        let child = Command::new(bin)
            .args(["route", "--config"])
            .arg(&self.routes_file)
            .args([
                "--listen",
                &addr.to_string(),
                "--threads",
                "2",
                "--reload-ms",
                "100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.routers.push(child);
        let http = reqwest::Client::new();
        eventually("the router to be ready", || {
            let http = http.clone();
            async move {
                let r = http
                    .get(format!("http://{addr}/readyz"))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await?;
        self.router_addrs.push(addr);
        // Register it as a ready router pod, as the kubelet would report it.
        let mut labels: BTreeMap<String, String> = router_selector(NAME);
        labels.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
        self.server.create_raw(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{NAME}-router-{i}"), "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "router", "image": "router",
                "ports": [{"name": "http", "containerPort": addr.port()}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))?;
        Ok(())
    }

    /// Sends chat requests through the routers (alternating) from `clients` loops.
    pub fn start_traffic(&mut self, clients: usize) {
        for c in 0..clients {
            let addrs = self.router_addrs.clone();
            let on = self.traffic_on.clone();
            let outcomes = self.outcomes.clone();
            self.traffic.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut i = c;
                while on.load(Ordering::Relaxed) {
                    let addr = addrs[i % addrs.len()];
                    i += 1;
                    let outcome = send(&http, addr).await;
                    if let Ok(mut o) = outcomes.lock() {
                        o.push(outcome);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
    }

    pub async fn stop_traffic(&mut self) {
        self.traffic_on.store(false, Ordering::Relaxed);
        for t in self.traffic.drain(..) {
            let _ = t.await;
        }
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    pub fn get(&self) -> Option<DeepSeekDeployment> {
        self.server.get::<DeepSeekDeployment>(NS, NAME)
    }

    pub fn status(&self) -> DeepSeekDeploymentStatus {
        self.get().and_then(|d| d.status).unwrap_or_default()
    }

    pub async fn patch_spec(&self, spec: Value) -> anyhow::Result<()> {
        let api: Api<DeepSeekDeployment> = Api::namespaced(self.server.client()?, NS);
        api.patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await?;
        Ok(())
    }

    /// Polls the status until `probe` accepts it, checking `invariant` on every status seen.
    pub async fn wait_status<T>(
        &self,
        what: &str,
        mut invariant: impl FnMut(&DeepSeekDeploymentStatus),
        mut probe: impl FnMut(&DeepSeekDeploymentStatus) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let st = self.status();
            invariant(&st);
            if let Some(v) = probe(&st) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("timed out after {WAIT:?} waiting for {what}; status: {st:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reasons and messages of the Events the operator published.
    pub fn events(&self) -> Vec<(String, String)> {
        self.server
            .list::<k8s_openapi::api::events::v1::Event>(Some(NS))
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_traffic().await;
        if let Some(tx) = self.operator_stop.take() {
            let _ = tx.send(());
        }
        Ok(())
    }
}

async fn send(http: &reqwest::Client, addr: SocketAddr) -> Outcome {
    let body = json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]});
    let response = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let json: Value = r.json().await.unwrap_or(Value::Null);
            Outcome {
                status,
                revision: json["revision"].as_str().map(str::to_string),
            }
        }
        Err(_) => Outcome {
            status: 0,
            revision: None,
        },
    }
}

fn start_operator(
    server: &FakeApiServer,
) -> anyhow::Result<(
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let cfg = RunConfig {
        metrics_addr: free_addr()?,
        identity: "op-rollout".into(),
        watch_namespace: Some(NS.into()),
        analysis_interval: Duration::from_millis(300),
        ..RunConfig::default()
    };
    let opts = RunOptions {
        metrics: Metrics::new()?,
        lease_timing: LeaseTiming::default(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let client = server.client()?;
    let task = tokio::spawn(async move {
        run_with(client, cfg, opts, async move {
            let _ = rx.await;
        })
        .await
    });
    Ok((tx, task))
}

/// Polls `probe` every 50 ms until it yields `Some`, failing after WAIT with `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::eventually_within(WAIT, what, probe).await
}
