//! Rate limits end to end: the in-memory buckets with OpenAI's headers, and the Redis-backed
//! buckets against a real `redis-server` the test starts: two router processes spending one
//! budget, and Redis stopped mid-test (fail-open serves, fail-closed refuses, both counted).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod router_support;
mod security_support;

use std::process::Stdio;
use std::time::Duration;

use common::{fake_state, FakeServerConfig};
use deepseek_security::RateLimitArgs;
use deepseek_test_support::{free_port, ChildGuard};
use security_support::*;

/// A throwaway `redis-server` on `port`, no persistence; killed on drop.
fn start_redis(port: u16) -> ChildGuard {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is missing: run `make test-deps`");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ChildGuard(child)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_openai_headers_and_others_are_unaffected() {
    let keys = Keys::new();
    let mut args = keys.args();
    args.rate_limit = RateLimitArgs {
        rate_limit_rpm: Some(60),
        rate_limit_burst: Some(3),
        ..RateLimitArgs::default()
    };
    let base = secure_server(fake_state(FakeServerConfig::default()).await, &args).await;
    let http = reqwest::Client::new();
    let get = |cred: String| {
        http.get(format!("{base}/v1/models"))
            .bearer_auth(cred)
            .send()
    };
    for left in [2, 1, 0] {
        let r = get(CHAT_KEY.into()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit-requests"), "60");
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests"),
            left.to_string()
        );
        assert!(header(&r, "x-ratelimit-reset-requests").ends_with('s'));
    }
    let refused = get(CHAT_KEY.into()).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Another principal (a JWT's subject) has its own bucket; probes are never limited.
    let other = get(keys.hs256(&claims(&["chat"]))).await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "x-ratelimit-remaining-requests"), "2");
    for _ in 0..5 {
        let r = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // One token a second: a second later the first client may send again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(CHAT_KEY.into()).await.unwrap().status(), 200);
}

struct Router {
    url: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// The router binary with API keys and a Redis-backed limit of 60/min, burst `burst`.
async fn router(keys: &Keys, backend: &str, redis_port: u16, policy: &str, burst: u32) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routes.yaml");
    let yaml = router_support::routes_yaml("", &[("stable", 100, vec![backend.to_string()])]);
    std::fs::write(&config, yaml).unwrap();
    let addr = deepseek_test_support::free_addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["route", "--listen", &addr.to_string()])
        .arg("--api-keys-file")
        .arg(&keys.api_keys_file)
        .env("DSR_RATE_LIMIT_RPM", "60")
        .env("DSR_RATE_LIMIT_BURST", burst.to_string())
        .env(
            "DSR_RATE_LIMIT_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}/0"),
        )
        .env("DSR_RATE_LIMIT_FAILURE_POLICY", policy)
        .env("DSR_ROUTE_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{addr}");
    deepseek_test_support::wait_for_http(&format!("{url}/healthz"), Duration::from_secs(20)).await;
    Router {
        url,
        _child: child,
        _dir: dir,
    }
}

async fn chat_status(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({"messages": []}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_routers_on_one_redis_share_one_budget() {
    let keys = Keys::new();
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let b = router_support::backend("stable").await;
    let one = router(&keys, &b.url, redis_port, "closed", 6).await;
    let two = router(&keys, &b.url, redis_port, "closed", 6).await;
    // Alternating between the two: the sixth request overall is the last in the budget.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = if i % 2 == 0 { &one } else { &two };
        statuses.push(chat_status(&r.url, CHAT_KEY).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    // Separate memory buckets would have let 12 through.
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 6);
}

#[tokio::test]
async fn redis_stopped_mid_test_fails_open_or_closed_as_configured() {
    let keys = Keys::new();
    let redis_port = free_port();
    let redis = start_redis(redis_port);
    let b = router_support::backend("stable").await;
    let open = router(&keys, &b.url, redis_port, "open", 100).await;
    let closed = router(&keys, &b.url, redis_port, "closed", 100).await;
    assert_eq!(chat_status(&open.url, CHAT_KEY).await, 200);
    assert_eq!(chat_status(&closed.url, CHAT_KEY).await, 200);
    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        assert_eq!(chat_status(&open.url, CHAT_KEY).await, 200, "fail-open");
        assert_eq!(chat_status(&closed.url, CHAT_KEY).await, 503, "fail-closed");
    }
    let metrics = |url: String| async move {
        reqwest::Client::new()
            .get(format!("{url}/metrics"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let open_page = metrics(open.url.clone()).await;
    assert!(
        router_support::sample(
            &open_page,
            "dsr_rate_limit_store_errors_total{policy=\"open\"}"
        ) >= 3.0,
        "{open_page}"
    );
    let closed_page = metrics(closed.url.clone()).await;
    assert!(
        router_support::sample(
            &closed_page,
            "dsr_rate_limit_store_errors_total{policy=\"closed\"}"
        ) >= 3.0,
        "{closed_page}"
    );
    // Redis back on the same port: the fail-closed router serves again without a restart.
    let _redis = start_redis(redis_port);
    assert_eq!(chat_status(&closed.url, CHAT_KEY).await, 200);
}

/// Per-request latency of `/v1/models` (a handler that does almost nothing, so the layers'
/// cost is what differs) without security, with JWT auth + in-memory limits, and with API-key
/// auth + Redis limits, interleaved request by request so the three see the same machine load.
#[tokio::test]
async fn auth_and_rate_limiting_add_little_latency_per_request() {
    let keys = Keys::new();
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let unlimited = |redis: Option<String>| RateLimitArgs {
        rate_limit_rpm: Some(60_000_000),
        rate_limit_burst: Some(10_000_000),
        rate_limit_redis_url: redis,
        ..RateLimitArgs::default()
    };
    let state = || fake_state(FakeServerConfig::default());
    let plain = secure_server(state().await, &deepseek_security::SecurityArgs::default()).await;
    let mut memory_args = keys.args();
    memory_args.rate_limit = unlimited(None);
    let memory = secure_server(state().await, &memory_args).await;
    let mut redis_args = keys.args();
    redis_args.rate_limit = unlimited(Some(format!("redis://127.0.0.1:{redis_port}")));
    let redis = secure_server(state().await, &redis_args).await;
    let token = keys.hs256(&claims(&["chat"]));
    let http = reqwest::Client::new();
    let targets = [
        ("off", plain.as_str(), None),
        (
            "JWT HS256 + memory limit",
            memory.as_str(),
            Some(token.as_str()),
        ),
        ("API key + Redis limit", redis.as_str(), Some(CHAT_KEY)),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 0..2200 {
        for (i, (_, base, cred)) in targets.iter().enumerate() {
            let mut req = http.get(format!("{base}/v1/models"));
            if let Some(c) = cred {
                req = req.bearer_auth(c);
            }
            let t = std::time::Instant::now();
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            if round >= 200 {
                samples[i].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let mut p50 = Vec::new();
    for ((name, _, _), s) in targets.iter().zip(samples.iter_mut()) {
        let (a, b) = (pct(s, 0.5), pct(s, 0.99));
        println!("{name:<28} p50 {a:>7.0} us   p99 {b:>7.0} us");
        p50.push(a);
    }
    for (i, (name, _, _)) in targets.iter().enumerate().skip(1) {
        println!("{name:<28} adds {:>5.0} us at p50", p50[i] - p50[0]);
        // Generous for a shared 2-core machine; a layer that did I/O twice or re-read key
        // files per request would blow through it.
        assert!(
            p50[i] - p50[0] < 2000.0,
            "{name} adds {} us",
            p50[i] - p50[0]
        );
    }
}
