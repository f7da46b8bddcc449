//! `serve`'s connection limits under abuse, on the real model: slowloris clients, 1,000 idle
//! connections and a flood of 4 MiB bodies at once, while a normal chat client keeps getting
//! answers within its usual latency and the server's memory stays bounded (printed).
#![allow(clippy::unwrap_used)]

mod abuse;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use abuse::{closed_within, flood, idle_connections, median, rss_mib, slowloris};
use serde_json::json;

async fn timed_chat(http: &reqwest::Client, base: &str) -> Duration {
    let body = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "temperature": 0,
    });
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_normal_client_is_served_through_slowloris_idle_connections_and_a_body_flood() {
    let port = deepseek_test_support::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["serve", "--host", "127.0.0.1", "--threads", "1"])
        .args([
            "--port",
            &port.to_string(),
            "--served-model-name",
            "smollm2",
        ])
        .args(["--context-length", "512", "--kv-cache-mb", "64"])
        .args([
            "--header-read-timeout-seconds",
            "2",
            "--idle-timeout-seconds",
            "5",
        ])
        .arg("--model")
        .arg(deepseek_test_support::model_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    deepseek_test_support::wait_for_http_ready(&format!("{base}/readyz"), Duration::from_secs(120))
        .await;
    let pid = child.id().unwrap();
    let http = deepseek_test_support::http_client();
    let mut usual: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        usual.push(timed_chat(&http, &base).await);
    }
    let usual = median(&mut usual);
    let rss_before = rss_mib(pid);

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let idle = idle_connections(addr, 1000).await;
    let slow = slowloris(addr, 100).await;
    let flood = flood(&format!("{base}/v1/chat/completions"), 8);
    let mut during = Vec::new();
    let mut rss_peak = rss_before;
    for _ in 0..10 {
        during.push(timed_chat(&http, &base).await);
        rss_peak = rss_peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answers = flood.finish().await;
    let worst = *during.iter().max().unwrap();
    println!(
        "serve under abuse: usual {usual:?}, worst {worst:?}, median {:?}; RSS {rss_before:.0} MiB before, {rss_peak:.0} MiB peak; flood answers [2xx, 4xx, 5xx, errors] {answers:?}",
        median(&mut during)
    );
    assert!(
        worst < usual * 5 + Duration::from_secs(3),
        "a normal chat took {worst:?} (usual {usual:?})"
    );
    assert!(answers[1] > 0, "the flood got its 4xx: {answers:?}");
    assert!(rss_peak < rss_before + 400.0, "RSS {rss_peak:.0} MiB");

    let (slow_closed, slow_longest) = closed_within(slow, Duration::from_secs(5)).await;
    assert_eq!(
        slow_closed, 100,
        "slowloris cut by the header-read limit; longest {slow_longest:?}"
    );
    let (idle_closed, idle_longest) = closed_within(idle, Duration::from_secs(9)).await;
    assert_eq!(
        idle_closed, 1000,
        "idle cut by the idle limit; longest {idle_longest:?}"
    );
    let page = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("dsr_http_connection_timeouts_total{kind=\"header_read\""),
        "{page}"
    );
    let _ = child.kill().await;
}
