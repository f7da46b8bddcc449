//! Passive health behind the router: a black-holed backend, one answering 500s and one whose
//! streams fail after their 200 are each ejected within a few requests, their failures show in
//! `/admin/stats`, and clients of the healthy backend never see an error. Readiness tells the
//! truth: 503 before a route file exists and while a weighted revision has no healthy backend.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use router_support::{
    backend, black_hole, client, dead_url, faulty_backend, fetch, routes_yaml, sample, Fault,
    RouterProc,
};

const EJECT: &[&str] = &["--eject-after-failures", "3", "--eject-base-seconds", "60"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_backend_is_ejected_and_no_client_request_fails() {
    let hole = black_hole();
    let live = backend("live").await;
    let yaml = routes_yaml(
        "connectTimeoutMs: 300",
        &[("r1", 100, vec![hole.url.clone(), live.url.clone()])],
    );
    let router = RouterProc::start_with(Some(&yaml), EJECT).await;
    let http = client();
    let mut slow = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, body) = fetch(&http, &router.url, "/who").await;
        assert_eq!((status, body.as_str()), (200, "live"));
        if started.elapsed() >= Duration::from_millis(250) {
            slow += 1; // paid the black hole's connect timeout
        }
    }
    assert!(slow <= 3, "{slow} requests waited on the black hole");
    let h = router.backend_health(&hole.url).await;
    assert_eq!(h["ejected"], true, "{h}");
    assert_eq!(h["ejections"], 1, "{h}");
    let s = router.revision_stats("r1", 20).await;
    assert_eq!(s["errors"]["connect"], 0, "{s}");
    let page = router.metrics().await;
    let series = format!(
        "dsr_router_backend_ejections_total{{backend=\"{}/\",revision=\"r1\"}}",
        hole.url
    );
    assert_eq!(sample(&page, &series), 1.0, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_500s_is_ejected_and_its_500s_are_retried_elsewhere() {
    let bad = faulty_backend(Fault::Status500).await;
    let live = backend("live").await;
    let yaml = routes_yaml("", &[("r1", 100, vec![bad.url.clone(), live.url.clone()])]);
    let router = RouterProc::start_with(Some(&yaml), EJECT).await;
    let http = client();
    for _ in 0..20 {
        let (status, body) = fetch(&http, &router.url, "/who").await;
        assert_eq!((status, body.as_str()), (200, "live"));
    }
    assert_eq!(
        bad.hits.load(Ordering::SeqCst),
        3,
        "ejected after 3 failures"
    );
    let h = router.backend_health(&bad.url).await;
    assert_eq!(
        (h["ejected"].clone(), h["ejections"].clone()),
        (true.into(), 1.into()),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_the_500s_count_in_the_revision_until_the_ejection() {
    let bad = faulty_backend(Fault::Status500).await;
    let live = backend("live").await;
    let yaml = routes_yaml("", &[("r1", 100, vec![bad.url.clone(), live.url.clone()])]);
    let mut flags = EJECT.to_vec();
    flags.extend(["--retry-5xx", "false"]);
    let router = RouterProc::start_with(Some(&yaml), &flags).await;
    let http = client();
    let mut failed = 0;
    for _ in 0..20 {
        let (status, _) = fetch(&http, &router.url, "/who").await;
        failed += usize::from(status == 500);
    }
    assert_eq!(failed, 3);
    let s = router.revision_stats("r1", 20).await;
    assert_eq!(s["errors"]["upstream_5xx"], 3, "{s}");
}

/// Streams `/stream` through the router; the SSE payloads it got.
async fn stream_events(http: &reqwest::Client, base: &str) -> Vec<String> {
    let resp = http.get(format!("{base}/stream")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("a clean end, not a cut")).unwrap());
    }
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data:").map(|d| d.trim().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_fail_after_their_200_are_counted_and_end_with_an_error_event() {
    for fault in [Fault::DiesMidStream, Fault::InBandError] {
        let bad = faulty_backend(fault).await;
        let live = backend("live").await;
        let yaml = routes_yaml("", &[("r1", 100, vec![bad.url.clone(), live.url.clone()])]);
        let router = RouterProc::start_with(Some(&yaml), EJECT).await;
        let http = client();
        let mut errored = 0;
        for _ in 0..12 {
            let events = stream_events(&http, &router.url).await;
            if events.iter().any(|e| e.starts_with(r#"{"error""#)) {
                assert_eq!(
                    events.last().map(String::as_str),
                    Some("[DONE]"),
                    "{fault:?}: {events:?}"
                );
                errored += 1;
            } else {
                assert_eq!(events.len(), router_support::STREAM_CHUNKS, "{events:?}");
            }
        }
        assert_eq!(
            bad.hits.load(Ordering::SeqCst),
            3,
            "{fault:?}: ejected after 3"
        );
        assert_eq!(errored, 3, "{fault:?}");
        let s = router.revision_stats("r1", 12).await;
        assert_eq!(s["errors"]["upstream_5xx"], 3, "{fault:?}: {s}");
        assert_eq!(s["midstream_failures"], 3, "{fault:?}: {s}");
        let page = router.metrics().await;
        assert_eq!(
            sample(
                &page,
                r#"dsr_router_midstream_failures_total{revision="r1"}"#
            ),
            3.0
        );
    }
}

async fn readyz(http: &reqwest::Client, router: &RouterProc) -> (u16, String) {
    fetch(http, &router.url, "/readyz").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_a_route_file_exists_then_200() {
    let live = backend("live").await;
    let router = RouterProc::start_with(None, &[]).await;
    let http = client();
    let (status, body) = readyz(&http, &router).await;
    assert_eq!(status, 503, "{body}");
    let resp = http
        .post(format!("{}/v1/chat/completions", router.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "no_routes");
    router.rewrite(&routes_yaml("", &[("r1", 100, vec![live.url.clone()])]));
    let ready = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { (readyz(&http, &router).await.0 == 200).then_some(()) },
    )
    .await;
    assert!(ready.is_some());
    assert_eq!(
        fetch(&http, &router.url, "/who").await,
        (200, "live".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_a_weighted_revision_has_no_healthy_backend() {
    let stable = backend("stable").await;
    let canary = backend("canary").await;
    let yaml = routes_yaml(
        "",
        &[
            ("stable", 90, vec![stable.url.clone()]),
            ("canary", 10, vec![canary.url.clone()]),
            ("gone", 0, vec![dead_url()]),
        ],
    );
    let router = RouterProc::start_with(Some(&yaml), &["--probe-interval-ms", "100"]).await;
    let http = client();
    let status_within = |want: u16| {
        let (http, router) = (&http, &router);
        async move {
            deepseek_test_support::eventually(
                Duration::from_secs(5),
                Duration::from_millis(50),
                || async move { (readyz(http, router).await.0 == want).then_some(()) },
            )
            .await
            .is_some()
        }
    };
    assert!(
        status_within(200).await,
        "a weight-0 revision's dead backend does not matter"
    );
    canary.ready.store(false, Ordering::SeqCst);
    assert!(
        status_within(503).await,
        "the canary's only backend fails its probe"
    );
    let (_, body) = readyz(&http, &router).await;
    assert!(body.contains("canary"), "{body}");
    canary.ready.store(true, Ordering::SeqCst);
    assert!(status_within(200).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_once_a_weighted_revisions_last_backend_keeps_failing() {
    let stable = backend("stable").await;
    let dead = dead_url();
    let yaml = routes_yaml(
        "",
        &[
            ("stable", 50, vec![stable.url.clone()]),
            ("canary", 50, vec![dead.clone()]),
        ],
    );
    let router = RouterProc::start_with(Some(&yaml), EJECT).await;
    let http = client();
    assert_eq!(readyz(&http, &router).await.0, 200);
    let mut failed = 0;
    for _ in 0..6 {
        failed += usize::from(fetch(&http, &router.url, "/who").await.0 == 502);
    }
    assert_eq!(failed, 3, "the canary's half: its only backend is down");
    let (status, body) = readyz(&http, &router).await;
    assert_eq!(status, 503, "{body}");
    let h = router.backend_health(&dead).await;
    assert_eq!(
        h["ejected"], false,
        "the last backend stays in rotation: {h}"
    );
}
