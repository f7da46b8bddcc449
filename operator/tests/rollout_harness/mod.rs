//! A small cluster for rollout scenarios on the real control plane: the real operator, the
//! real Deployment/ReplicaSet/EndpointSlice controllers, scheduler and kwok, and a "kubelet"
//! (`kubelet.rs`) that runs the Ready pods' processes on their loopback pod IPs: the real
//! router binary (`deepseek-runtime route`) for the router pods, one HTTP backend per runtime
//! pod (healthy, or answering 500 when the revision's image says `bad`), and the routes
//! ConfigMap turned into the routers' file after a kubelet-like delay. A client sends traffic
//! through the routers and records which revision answered each request.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus};
use deepseek_operator::desired::security::ROUTER_ADMIN_PORT;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{json, Value};

#[path = "../common/mod.rs"]
mod common;
mod kubelet;
use kubelet::{kubelet, Node};

pub const NAME: &str = "chat";
pub const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Bound of every wait in these scenarios.
pub const WAIT: Duration = Duration::from_secs(120);

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
        "metadata": {"name": NAME},
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

pub struct Backend {
    pub url: String,
    pub task: tokio::task::JoinHandle<()>,
}

pub struct Cluster {
    pub k8s: common::Cluster,
    operator: Option<common::Operator>,
    node: Arc<Mutex<Node>>,
    routes_file: PathBuf,
    _dir: tempfile::TempDir,
    kubelet: tokio::task::JoinHandle<()>,
    pub outcomes: Arc<Mutex<Vec<Outcome>>>,
    traffic_on: Arc<AtomicBool>,
    traffic: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kubelet.abort();
        if let Some(op) = &self.operator {
            op.abort();
        }
        for t in &self.traffic {
            t.abort();
        }
        if let Ok(mut n) = self.node.lock() {
            n.stop_all();
        }
    }
}

/// A chat backend on `addr` that names its revision; a `bad` one answers 500 to chat requests.
pub fn start_backend(revision: String, bad: bool, addr: SocketAddr) -> anyhow::Result<Backend> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let url = format!("http://{addr}");
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
    /// Starts everything and creates the resource; returns once both routers serve.
    pub async fn start(body: Value) -> anyhow::Result<Self> {
        let bin = router_binary()?;
        let k8s = common::Cluster::new().await?;
        let client = k8s.recorded_client()?;
        let operator = common::start_operator_with(&k8s, client, "op-rollout", false, |cfg| {
            cfg.analysis_interval = Duration::from_millis(300);
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let routes_file = dir.path().join("routes.yaml");
        k8s.api::<DeepSeekDeployment>()
            .create(&PostParams::default(), &serde_json::from_value(body)?)
            .await?;
        let node = Arc::new(Mutex::new(Node::default()));
        let cluster = Cluster {
            kubelet: tokio::spawn(kubelet(
                k8s.client(),
                k8s.ns.clone(),
                bin,
                node.clone(),
                routes_file.clone(),
            )),
            k8s,
            operator: Some(operator),
            node,
            routes_file,
            _dir: dir,
            outcomes: Arc::new(Mutex::new(Vec::new())),
            traffic_on: Arc::new(AtomicBool::new(true)),
            traffic: Vec::new(),
        };
        let http = reqwest::Client::new();
        eventually("two routers serving", || {
            let addrs = cluster.router_addrs();
            let http = http.clone();
            async move {
                if addrs.len() < 2 {
                    return None;
                }
                for addr in addrs {
                    let r = http
                        .get(format!("http://{addr}/readyz"))
                        .send()
                        .await
                        .ok()?;
                    if !r.status().is_success() {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await?;
        Ok(cluster)
    }

    /// The routers running now (Ready router pods).
    pub fn router_addrs(&self) -> Vec<SocketAddr> {
        self.node.lock().map(|n| n.routers()).unwrap_or_default()
    }

    /// Waits until every running router serves a table without `revision` (its weight 0 in
    /// `/admin/stats`): after the kubelet's ConfigMap delay, no new request goes there.
    pub async fn routers_left(&self, revision: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        eventually(&format!("every router to leave {revision}"), || async {
            for addr in self.router_addrs() {
                let admin = SocketAddr::new(addr.ip(), ROUTER_ADMIN_PORT);
                let stats: Value = http
                    .get(format!("http://{admin}/admin/stats"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let weight = stats["revisions"]
                    .as_array()?
                    .iter()
                    .find(|r| r["name"] == revision)
                    .and_then(|r| r["weight"].as_u64())
                    .unwrap_or(0);
                if weight != 0 {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    /// Sends chat requests through the routers (alternating) from `clients` loops.
    pub fn start_traffic(&mut self, clients: usize) {
        for c in 0..clients {
            let node = self.node.clone();
            let on = self.traffic_on.clone();
            let outcomes = self.outcomes.clone();
            self.traffic.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut i = c;
                while on.load(Ordering::Relaxed) {
                    // Through the router Service: any router running now.
                    let addrs = node.lock().map(|n| n.routers()).unwrap_or_default();
                    if addrs.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
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

    pub async fn get(&self) -> Option<DeepSeekDeployment> {
        self.k8s.get::<DeepSeekDeployment>(NAME).await
    }

    pub async fn status(&self) -> DeepSeekDeploymentStatus {
        self.get().await.and_then(|d| d.status).unwrap_or_default()
    }

    pub async fn patch_spec(&self, spec: Value) -> anyhow::Result<()> {
        self.k8s
            .api::<DeepSeekDeployment>()
            .patch(
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
            let st = self.status().await;
            invariant(&st);
            if let Some(v) = probe(&st) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("timed out after {WAIT:?} waiting for {what}; status: {st:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reasons and messages of the Events the operator published.
    pub async fn events(&self) -> Vec<(String, String)> {
        self.k8s
            .list::<k8s_openapi::api::events::v1::Event>()
            .await
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_traffic().await;
        if let Some(op) = self.operator.take() {
            op.stop().await?;
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

/// Polls `probe` every 100 ms until it yields `Some`, failing after WAIT with `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::eventually_within(WAIT, what, probe).await
}
