//! Shared pieces of the router tests: small backends whose faults the tests choose (each
//! answers with its own name), the real router binary started in `route` mode on a route file
//! in a temp dir, and readers for `/admin/stats` and `/metrics`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use deepseek_test_support::free_addr;
use serde_json::Value;

mod faults;
#[allow(unused_imports)] // each test file uses some of them
pub use faults::{black_hole, faulty_backend, BlackHole, Fault};

/// Gap between the chunks of `/stream`.
pub const STREAM_GAP: Duration = Duration::from_millis(300);
pub const STREAM_CHUNKS: usize = 5;

pub struct Backend {
    pub name: String,
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    /// What its `/readyz` answers: 200 while true, 503 while false.
    pub ready: Arc<AtomicBool>,
}

#[derive(Clone)]
struct BackendState {
    name: String,
    hits: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
}

/// A backend answering `/who` and `/v1/chat/completions` with its name, `/status/{code}` with
/// that status, `/stream` with SSE chunks `STREAM_GAP` apart, `/stall` never, and `/ws/chat`
/// as a WebSocket echo prefixed with its name.
pub async fn backend(name: &str) -> Backend {
    let hits = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicBool::new(true));
    let state = BackendState {
        name: name.to_string(),
        hits: hits.clone(),
        ready: ready.clone(),
    };
    let app = Router::new()
        .route("/who", get(who))
        .route("/v1/chat/completions", post(chat))
        .route("/status/{code}", get(status))
        .route("/stream", get(stream))
        .route("/stall", get(stall))
        .route("/ws/chat", get(ws))
        .route("/endless", get(endless))
        .route("/readyz", get(readiness))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Backend {
        name: name.to_string(),
        url: format!("http://{addr}"),
        hits,
        ready,
    }
}

async fn readiness(State(s): State<BackendState>) -> StatusCode {
    if s.ready.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// SSE chunks `STREAM_GAP` apart, forever.
async fn endless(State(s): State<BackendState>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let chunks = futures::stream::unfold(0usize, |i| async move {
        if i > 0 {
            tokio::time::sleep(STREAM_GAP).await;
        }
        let chunk = Bytes::from(format!("data: {{\"token\":{i}}}\n\n"));
        Some((Ok::<_, std::io::Error>(chunk), i + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(chunks))
        .unwrap()
}

async fn who(State(s): State<BackendState>) -> String {
    s.hits.fetch_add(1, Ordering::SeqCst);
    s.name.clone()
}

/// Reads the whole body (as a real backend does), then answers with the name.
async fn chat(State(s): State<BackendState>, body: Body) -> String {
    let _ = axum::body::to_bytes(body, usize::MAX).await;
    who(State(s)).await
}

async fn status(State(s): State<BackendState>, Path(code): Path<u16>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::from_u16(code).unwrap(), s.name.clone()).into_response()
}

async fn stream(State(s): State<BackendState>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let chunks = futures::stream::unfold(0usize, |i| async move {
        if i == STREAM_CHUNKS {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(STREAM_GAP).await;
        }
        let chunk = Bytes::from(format!("data: {{\"token\":{i}}}\n\n"));
        Some((Ok::<_, std::io::Error>(chunk), i + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(chunks))
        .unwrap()
}

async fn stall(State(s): State<BackendState>) -> String {
    s.hits.fetch_add(1, Ordering::SeqCst);
    std::future::pending::<()>().await;
    String::new()
}

async fn ws(State(s): State<BackendState>, upgrade: WebSocketUpgrade) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    upgrade.on_upgrade(move |socket| echo(socket, s.name))
}

async fn echo(mut socket: WebSocket, name: String) {
    while let Some(Ok(msg)) = socket.recv().await {
        if let Message::Text(t) = msg {
            let reply = format!("{name}: {}", t.as_str());
            if socket.send(Message::Text(reply.into())).await.is_err() {
                return;
            }
        }
    }
}
/// A port nothing listens on (bound, then released).
pub fn dead_url() -> String {
    format!("http://{}", free_addr())
}

/// `(name, weight, backend URLs)` -> routes.yaml text.
pub fn routes_yaml(extra: &str, revisions: &[(&str, u32, Vec<String>)]) -> String {
    let mut s = format!("{extra}\nrevisions:\n");
    for (name, weight, backends) in revisions {
        let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
        s.push_str(&format!(
            "  - name: {name}\n    weight: {weight}\n    backends: [{}]\n",
            list.join(", ")
        ));
    }
    s
}

/// The router binary in `route` mode; killed on drop.
pub struct RouterProc {
    pub url: String,
    pub config: PathBuf,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl RouterProc {
    pub async fn start(yaml: &str) -> Self {
        Self::start_full(Some(yaml), &[], &[]).await
    }

    /// The router with extra flags; `yaml: None` starts it before its route file exists.
    pub async fn start_with(yaml: Option<&str>, flags: &[&str]) -> Self {
        Self::start_full(yaml, flags, &[]).await
    }

    /// As `start`, with extra environment variables (`DSR_*` twins of route flags).
    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full(Some(yaml), &[], env).await
    }

    async fn start_full(yaml: Option<&str>, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("routes.yaml");
        if let Some(yaml) = yaml {
            std::fs::write(&config, yaml).unwrap();
        }
        let addr = free_addr();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
            .args(["route", "--reload-ms", "200", "--listen", &addr.to_string()])
            .args(flags)
            .env("DSR_ROUTE_CONFIG", &config)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://{addr}");
        deepseek_test_support::wait_for_http(&format!("{url}/readyz"), Duration::from_secs(20))
            .await;
        Self {
            url,
            config,
            child,
            _dir: dir,
        }
    }

    /// Replaces the route file the way a ConfigMap update does: write aside, then rename.
    pub fn rewrite(&self, yaml: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub async fn stats(&self) -> Value {
        let resp = client()
            .get(format!("{}/admin/stats", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// The stats entry of `revision`, once its request count reaches `requests` (responses are
    /// recorded when the router drops the body, just after the client has read it).
    pub async fn revision_stats(&self, revision: &str, requests: u64) -> Value {
        let started = Instant::now();
        loop {
            let stats = self.stats().await;
            let entry = stats["revisions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == revision)
                .cloned()
                .unwrap_or(Value::Null);
            if entry["requests"].as_u64() >= Some(requests)
                || started.elapsed() > Duration::from_secs(5)
            {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn terminate(&self) {
        let pid = self.pid().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; its exit code.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the router exits")
            .unwrap()
            .code()
    }

    /// The entry of `url` in `/admin/stats`'s backends.
    pub async fn backend_health(&self, url: &str) -> Value {
        let stats = self.stats().await;
        let want = format!("{}/", url.trim_end_matches('/'));
        stats["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["url"] == want.as_str())
            .cloned()
            .unwrap_or(Value::Null)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GETs `path` through the router; returns status and body.
pub async fn fetch(http: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let resp = http.get(format!("{base}{path}")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// One sample of a Prometheus page: the line starting with `series` (name and labels exactly).
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
