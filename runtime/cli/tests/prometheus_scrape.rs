//! A real Prometheus server (Debian's `prometheus`, installed by `make test-deps`) on 127.0.0.1
//! scrapes the real `deepseek-runtime serve` process (SmolLM2, `make model`) after it answered a
//! few chat requests, and evaluates the operator's latency alert on the scraped data:
//! `monitoring/rules/scrape.rules.json` is the PrometheusRule the operator renders for two
//! deployments (a golden test in operator/tests/monitoring_promtool.rs keeps it current), `fires`
//! with a p99 threshold of 1 ms and `silent` with one of an hour. Two scrape jobs stand in for
//! the PodMonitor, adding the `namespace` and `deepseek_deployment` labels it would.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/real.rs"]
mod real;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use real::*;
use serde_json::{json, Value};

const ALERT: &str = "DeepSeekRequestLatencyP99High";
const REVISION: &str = "scrape0001";

use deepseek_test_support::free_port;

fn repo() -> PathBuf {
    deepseek_test_support::workspace_root()
}

fn prometheus_binary() -> &'static str {
    let ok = std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`prometheus` not found on PATH: run `make test-deps` (scripts/test-deps.sh installs \
         Debian's `prometheus` package)"
    );
    "prometheus"
}

/// The latency alert's expression of one deployment in the operator's rendered rules.
fn latency_expr(rules: &Value, deployment: &str) -> String {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["alert"] == ALERT && r["labels"]["deepseek_deployment"] == deployment)
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no {ALERT} for {deployment} in the rendered rules"))
        .to_string()
}

fn config(runtime_port: u16, rules: &Path) -> String {
    let job = |name: &str| {
        format!(
            "  - job_name: {name}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"127.0.0.1:{runtime_port}\"]\n        labels: {{namespace: scrape, deepseek_deployment: {name}}}\n"
        )
    };
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{}{}",
        rules.display(),
        job("fires"),
        job("silent")
    )
}

async fn api(base: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let v: Value = client()
        .get(format!("{base}/api/v1/{path}"))
        .query(query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

async fn instant(base: &str, expr: &str) -> Vec<Value> {
    api(base, "query", &[("query", expr)]).await["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `probe` every 500 ms for up to 90 s.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    for _ in 0..180 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_latency_alert_evaluates_on_metrics_a_real_prometheus_scraped_from_the_runtime() {
    let prometheus = prometheus_binary();
    let rules_path = repo().join("monitoring/rules/scrape.rules.json");
    let rules: Value =
        serde_json::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();

    let runtime_port = free_port();
    let _runtime = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .arg("serve")
        .env("DSR_MODEL", model_path())
        .env("DSR_PORT", runtime_port.to_string())
        .env("DSR_SERVED_MODEL_NAME", REAL_MODEL_NAME)
        .env("DSR_REVISION", REVISION)
        .env("DSR_CONTEXT_LENGTH", "512")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let runtime = format!("http://127.0.0.1:{runtime_port}");
    wait_ready(&runtime).await;

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config(runtime_port, &rules_path)).unwrap();
    let prom_port = free_port();
    let _server = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prom = format!("http://127.0.0.1:{prom_port}");
    until("Prometheus ready", || async {
        let r = client().get(format!("{prom}/-/ready")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    // rate() needs the counters to move between two scrapes: requests go out after the first.
    until("both scrape jobs up", || async {
        let up = instant(&prom, "up == 1").await;
        (up.len() == 2).then_some(())
    })
    .await;
    for prompt in ["What is 2+2?", "Name a colour.", "Say hello."] {
        let body = json!({"model": REAL_MODEL_NAME, "max_tokens": 4, "temperature": 0,
                          "messages": [{"role": "user", "content": prompt}]});
        chat(&runtime, &body).await;
    }

    let fires = latency_expr(&rules, "fires");
    let series = until("the p99 of the scraped requests", || async {
        Some(instant(&prom, &fires).await).filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0]["metric"];
    assert_eq!(labels["revision"], REVISION, "{labels}");
    assert_eq!(labels["namespace"], "scrape");
    assert_eq!(labels["deepseek_deployment"], "fires");
    let p99: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p99 > 0.001 && p99.is_finite(), "p99 {p99} s");

    let silent = latency_expr(&rules, "silent");
    assert!(
        instant(&prom, &silent).await.is_empty(),
        "no request took an hour: {silent}"
    );

    // The server loaded the same rules and fires the alert (for: 1s) for `fires` only.
    let alerts = until("the alert firing in Prometheus", || async {
        let alerts = api(&prom, "alerts", &[]).await["alerts"].clone();
        let firing = alerts.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == ALERT && x["state"] == "firing")
        });
        firing.then_some(alerts)
    })
    .await;
    let names: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == ALERT)
        .map(|a| &a["labels"]["deepseek_deployment"])
        .collect();
    assert_eq!(names, [&json!("fires")], "{alerts}");
}
