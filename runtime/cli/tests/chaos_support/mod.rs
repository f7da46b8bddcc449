//! Shared by the chaos and soak tests: a real `serve` process on the SmolLM2 model with extra
//! flags, its resident memory, a streamed chat that reports how it ended, and WebSocket helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub const MODEL: &str = "smollm2";

pub struct Serve {
    pub url: String,
    pub child: tokio::process::Child,
}

impl Serve {
    /// Starts `serve` on the real model with `extra` flags; returns once `/readyz` is 200.
    pub async fn start(extra: &[&str]) -> Serve {
        let port = deepseek_test_support::free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
            .args(["serve", "--host", "127.0.0.1", "--threads", "2"])
            .args(["--port", &port.to_string(), "--served-model-name", MODEL])
            .args(["--context-length", "512"])
            .arg("--model")
            .arg(deepseek_test_support::model_path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        deepseek_test_support::wait_for_http_ready(
            &format!("{url}/readyz"),
            Duration::from_secs(180),
        )
        .await;
        Serve { url, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Resident memory in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn status(&self, path: &str) -> u16 {
        client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

pub fn chat_body(content: &str, max_tokens: usize, stream: bool) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0, "stream": stream})
}

/// How a streamed chat ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// A `finish_reason` chunk, then `[DONE]`.
    Finished(String),
    /// An error payload (its code), then `[DONE]`.
    Error(String),
    /// A non-200 status before the stream began (status, code).
    Refused(u16, String),
    /// The connection ended without `[DONE]`: the failure this suite exists to catch.
    Cut(String),
}

/// Streams one chat and reports how it ended and how long it took. `first_chunk`, when given,
/// is told once the response headers and first bytes arrived (so a test knows it is open).
pub async fn stream_chat(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
    first_chunk: Option<tokio::sync::oneshot::Sender<()>>,
) -> (Ending, Duration) {
    let started = Instant::now();
    let resp = match client
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (Ending::Cut(format!("send: {e}")), started.elapsed()),
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let text = resp.text().await.unwrap_or_default();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or(text);
        return (Ending::Refused(status, code), started.elapsed());
    }
    let mut first_chunk = first_chunk;
    let mut text = String::new();
    let mut chunks = resp.bytes_stream();
    while let Some(c) = chunks.next().await {
        match c {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(e) => return (Ending::Cut(format!("{e}: {text}")), started.elapsed()),
        }
        if let Some(tx) = first_chunk.take() {
            let _ = tx.send(());
        }
    }
    (sse_ending(&text), started.elapsed())
}

pub fn sse_ending(text: &str) -> Ending {
    let payloads: Vec<&str> = text
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data:")))
        .map(str::trim)
        .collect();
    if payloads.last() != Some(&"[DONE]") {
        return Ending::Cut(text.to_string());
    }
    for p in payloads.iter().rev().skip(1) {
        let v: Value = serde_json::from_str(p).unwrap();
        if let Some(code) = v["error"]["code"].as_str() {
            return Ending::Error(code.to_string());
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            return Ending::Finished(f.to_string());
        }
    }
    Ending::Cut(text.to_string())
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(base: &str) -> Ws {
    let url = format!("{}/ws/chat", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

pub async fn ws_send(ws: &mut Ws, v: &Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The final frame of request `id` (`done` or `error`), or `Cut` when the socket closed first.
pub async fn ws_ending(ws: &mut Ws, id: &str) -> Ending {
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(t)) = msg else {
            if msg.is_err() {
                break;
            }
            continue;
        };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f["id"] != id {
            continue;
        }
        match f["type"].as_str().unwrap() {
            "done" => return Ending::Finished(f["finish_reason"].as_str().unwrap().into()),
            "error" => return Ending::Error(f["error"]["code"].as_str().unwrap().into()),
            _ => {}
        }
    }
    Ending::Cut(format!("socket closed before request {id} ended"))
}

/// Percentile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}
