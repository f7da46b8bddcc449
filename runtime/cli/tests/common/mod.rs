//! Shared helpers for the HTTP tests: starting servers on 127.0.0.1, SSE parsing, JSON posts.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use deepseek_engine::engine::testing::{FakeModel, FakeTokenizer};
use deepseek_engine::engine::{self, EngineConfig};
use deepseek_engine::metrics::Metrics;
use deepseek_engine::scheduler::SchedulerConfig;
use deepseek_protocol::validate::Limits;
use deepseek_server::degrade::{Degradation, DegradeConfig};
use deepseek_server::{self as api, AppState};
use serde_json::Value;

pub const FAKE_MODEL_NAME: &str = "fake-model";

pub struct FakeServerConfig {
    pub max_batch_size: usize,
    pub max_queue: usize,
    pub max_body_bytes: usize,
    pub step_delay: Duration,
    pub degrade: DegradeConfig,
    pub origins: deepseek_http::OriginPolicy,
    pub privacy: std::sync::Arc<deepseek_server::privacy::Privacy>,
    pub bounds: deepseek_server::bounds::Bounds,
    /// Test-only engine fault (see `deepseek_engine::engine::fault`).
    pub fault: Option<deepseek_engine::engine::fault::Fault>,
}

impl Default for FakeServerConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 8,
            max_queue: 64,
            max_body_bytes: 64 * 1024,
            step_delay: Duration::ZERO,
            degrade: DegradeConfig::default(),
            origins: Default::default(),
            privacy: Default::default(),
            bounds: Default::default(),
            fault: None,
        }
    }
}

/// An in-process server over the deterministic fake model; lives as long as the test runtime.
pub async fn fake_server(cfg: FakeServerConfig) -> String {
    let state = fake_state(cfg).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    format!("http://{addr}")
}

/// The shared state of a fake-model server, its engine warmed up (for tests that serve it
/// their own way, e.g. behind the security layers).
pub async fn fake_state(cfg: FakeServerConfig) -> Arc<AppState> {
    let mut model = FakeModel::new(256);
    model.step_delay = cfg.step_delay;
    let metrics = Arc::new(Metrics::new(FAKE_MODEL_NAME, "r1").unwrap());
    let engine_cfg = EngineConfig {
        scheduler: SchedulerConfig {
            max_batch_size: cfg.max_batch_size,
            max_step_tokens: 256,
            kv_capacity_tokens: 8192,
        },
        max_queue: cfg.max_queue,
        step_timeout: Duration::from_secs(120),
        fault: cfg.fault,
    };
    let engine = engine::spawn(
        Box::new(model),
        Arc::new(FakeTokenizer),
        metrics.clone(),
        engine_cfg,
    )
    .unwrap();
    while !engine.is_ready() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Arc::new(AppState {
        engine,
        prompt: Arc::new(FakeTokenizer),
        limits: Limits {
            served_model_name: FAKE_MODEL_NAME.into(),
            context_length: 256,
            max_stop_strings: 4,
        },
        revision: "r1".into(),
        created: 0,
        metrics,
        max_body_bytes: cfg.max_body_bytes,
        degrade: Degradation::new(cfg.degrade),
        origins: cfg.origins,
        privacy: cfg.privacy,
        live: deepseek_server::bounds::Live::new(&cfg.bounds),
        bounds: cfg.bounds,
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// POSTs `body` to /v1/chat/completions; returns status, headers and the raw body text.
pub async fn post_chat(base: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// Non-streaming chat; panics unless 200. Returns the parsed reply.
pub async fn chat(base: &str, body: &Value) -> Value {
    let (status, _, text) = post_chat(base, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(|d| d.trim().to_string())
        })
        .collect()
}

/// A streamed chat: (concatenated content, finish_reason, usage chunk if any, all payloads).
pub async fn stream_chat(base: &str, body: &Value) -> (String, String, Option<Value>, Vec<String>) {
    let (status, _, text) = post_chat(base, body).await;
    assert_eq!(status, 200, "{text}");
    stream_chat_body(&text)
}

/// Parses a whole SSE chat body, as `stream_chat` returns it.
pub fn stream_chat_body(text: &str) -> (String, String, Option<Value>, Vec<String>) {
    let payloads = sse_data(text);
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{text}"
    );
    let (mut content, mut finish, mut usage) = (String::new(), String::new(), None);
    for p in &payloads[..payloads.len() - 1] {
        let v: Value = serde_json::from_str(p).unwrap();
        assert!(v.get("error").is_none(), "stream error: {p}");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (content, finish, usage, payloads)
}

/// Reads one metric sample (`name` with any labels) from a /metrics page.
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub async fn metrics_page(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One bad request and the error it must get.
pub struct BadInput {
    pub name: &'static str,
    pub body: String,
    pub content_type: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub param: Option<&'static str>,
}

/// Every bad input the API must answer with an OpenAI-shaped 4xx. `model` is the served name,
/// `body_limit` the server's max body bytes, `context` its context length.
pub fn bad_inputs(model: &str, body_limit: usize, context: usize) -> Vec<BadInput> {
    let msgs = r#"[{"role":"user","content":"hi"}]"#;
    let with = |extra: &str| format!(r#"{{"model":"{model}","messages":{msgs},{extra}}}"#);
    let bad = |name, body: String, status, code, param| BadInput {
        name,
        body,
        content_type: "application/json",
        status,
        code,
        param,
    };
    vec![
        bad(
            "invalid json",
            r#"{"messages": ["#.into(),
            400,
            "invalid_json",
            None,
        ),
        bad(
            "messages of the wrong type",
            r#"{"messages":"hi"}"#.into(),
            400,
            "invalid_json",
            None,
        ),
        bad(
            "missing messages",
            format!(r#"{{"model":"{model}"}}"#),
            400,
            "missing_messages",
            Some("messages"),
        ),
        bad(
            "empty messages",
            r#"{"messages":[]}"#.into(),
            400,
            "empty_messages",
            Some("messages"),
        ),
        bad(
            "unknown role",
            r#"{"messages":[{"role":"wizard","content":"hi"}]}"#.into(),
            400,
            "unknown_role",
            Some("messages"),
        ),
        bad(
            "temperature above 2",
            with(r#""temperature":5"#),
            400,
            "out_of_range",
            Some("temperature"),
        ),
        bad(
            "negative temperature",
            with(r#""temperature":-0.5"#),
            400,
            "out_of_range",
            Some("temperature"),
        ),
        bad(
            "top_p of zero",
            with(r#""top_p":0"#),
            400,
            "out_of_range",
            Some("top_p"),
        ),
        bad(
            "top_p above 1",
            with(r#""top_p":1.5"#),
            400,
            "out_of_range",
            Some("top_p"),
        ),
        bad(
            "max_tokens of zero",
            with(r#""max_tokens":0"#),
            400,
            "out_of_range",
            Some("max_tokens"),
        ),
        bad(
            "negative max_tokens",
            with(r#""max_tokens":-5"#),
            400,
            "out_of_range",
            Some("max_tokens"),
        ),
        bad(
            "max_tokens beyond the context",
            with(&format!(r#""max_tokens":{context}"#)),
            400,
            "context_length_exceeded",
            Some("messages"),
        ),
        bad("n of 2", with(r#""n":2"#), 400, "unsupported_n", Some("n")),
        bad(
            "unknown model",
            format!(r#"{{"model":"no-such-model","messages":{msgs}}}"#),
            404,
            "model_not_found",
            Some("model"),
        ),
        bad(
            "body over the limit",
            format!(
                r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(body_limit)
            ),
            413,
            "body_too_large",
            None,
        ),
        BadInput {
            content_type: "",
            ..bad(
                "no content type",
                with(r#""seed":1"#),
                415,
                "unsupported_media_type",
                None,
            )
        },
        BadInput {
            content_type: "application/x-www-form-urlencoded",
            ..bad(
                "a cross-site form post",
                with(r#""seed":1"#),
                415,
                "unsupported_media_type",
                None,
            )
        },
        BadInput {
            content_type: "text/plain",
            ..bad(
                "wrong content type",
                with(r#""seed":1"#),
                415,
                "unsupported_media_type",
                None,
            )
        },
    ]
}

/// Sends every bad input and checks status and error body; returns failures as text.
pub async fn check_bad_inputs(base: &str, cases: Vec<BadInput>) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let mut post = client().post(format!("{base}/v1/chat/completions"));
        if !case.content_type.is_empty() {
            post = post.header("content-type", case.content_type);
        }
        let resp = post.body(case.body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let e = &v["error"];
        let shaped = e["message"].is_string() && e["type"].is_string() && e.get("param").is_some();
        let ok = status == case.status
            && shaped
            && e["code"] == case.code
            && e["param"].as_str() == case.param;
        if !ok {
            failures.push(format!("{}: got {status} {text}", case.name));
        }
    }
    failures
}
