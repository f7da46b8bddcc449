//! Rewriting the route file moves traffic within 2 s, under continuous load, without one
//! failed request; an invalid rewrite is rejected and the old routes keep serving. The router
//! reports the `generation` of the table it serves (`routesGeneration`), and only an accepted
//! reload changes it: the operator scales a dropped revision down only after seeing it.
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
    let router = RouterProc::start(&routes_yaml(
        "generation: gen-1\n",
        &[("a", 100, vec![a.url.clone()])],
    ))
    .await;
    assert_eq!(router.stats().await["routesGeneration"], "gen-1");
    router.rewrite(&routes_yaml(
        "generation: gen-2\n",
        &[("a", 60, vec![a.url.clone()])],
    ));
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
    assert_eq!(
        stats["routesGeneration"], "gen-1",
        "a rejected file must not change the generation the router reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_rewrite_reports_the_new_routes_generation() {
    let (a, b) = (backend("a").await, backend("b").await);
    let table = |generation: &str, w_a: u32| {
        routes_yaml(
            &format!("generation: {generation}\n"),
            &[
                ("a", w_a, vec![a.url.clone()]),
                ("b", 100 - w_a, vec![b.url.clone()]),
            ],
        )
    };
    let router = RouterProc::start(&table("gen-1", 100)).await;
    assert_eq!(router.stats().await["routesGeneration"], "gen-1");
    router.rewrite(&table("gen-2", 0));
    let started = Instant::now();
    while router.stats().await["routesGeneration"] != "gen-2" {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the new generation was never reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = client();
    for _ in 0..10 {
        assert_eq!(fetch(&http, &router.url, "/who").await.1, "b");
    }
    router.rewrite(&routes_yaml("", &[("a", 100, vec![a.url.clone()])]));
    let started = Instant::now();
    while router.stats().await.get("routesGeneration").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a file without a generation must report none"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
