//! Rewriting the route file moves traffic within 2 s, under continuous load, without one
//! failed request; an invalid rewrite is rejected and the old routes keep serving.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use router_support::{backend, client, fetch, routes_yaml, sample, RouterProc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewriting_the_route_file_moves_traffic_within_two_seconds_with_no_failed_request() {
    let (old, new) = (backend("old").await, backend("new").await);
    let revisions = |w_old: u32| {
        routes_yaml(
            "",
            &[
                ("old", w_old, vec![old.url.clone()]),
                ("new", 100 - w_old, vec![new.url.clone()]),
            ],
        )
    };
    let router = RouterProc::start(&revisions(100)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, stop, sent) =
                (client(), router.url.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match http.get(format!("{url}/who")).send().await {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => failures.push(format!("HTTP {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                failures
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = client();
    assert_eq!(fetch(&http, &router.url, "/who").await.1, "old");
    router.rewrite(&revisions(0));
    let changed = Instant::now();
    while fetch(&http, &router.url, "/who").await.1 != "new" {
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "routes did not change in 2 s"
        );
    }
    let took = changed.elapsed();
    for _ in 0..50 {
        assert_eq!(fetch(&http, &router.url, "/who").await.1, "new");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for l in load {
        failures.extend(l.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        sent.load(Ordering::SeqCst) > 100,
        "too little load to prove anything"
    );
    eprintln!(
        "weights changed after {took:?} under {} requests",
        sent.load(Ordering::SeqCst)
    );
    let page = router.metrics().await;
    assert_eq!(
        sample(&page, r#"dsr_router_route_weight{revision="new"}"#),
        100.0
    );
    assert_eq!(
        sample(&page, r#"dsr_router_route_weight{revision="old"}"#),
        0.0
    );
    assert_eq!(
        sample(&page, r#"dsr_router_config_reloads_total{result="ok"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rewrite_is_rejected_and_the_old_routes_keep_serving() {
    let a = backend("a").await;
    let router = RouterProc::start(&routes_yaml("", &[("a", 100, vec![a.url.clone()])])).await;
    router.rewrite(&routes_yaml("", &[("a", 60, vec![a.url.clone()])]));
    let http = client();
    let started = Instant::now();
    loop {
        let page = router.metrics().await;
        if sample(&page, r#"dsr_router_config_reloads_total{result="error"}"#) == 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "rewrite never seen: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..10 {
        assert_eq!(
            fetch(&http, &router.url, "/who").await,
            (200, "a".to_string())
        );
    }
    let stats = router.stats().await;
    assert_eq!(stats["revisions"][0]["weight"], 100);
}
