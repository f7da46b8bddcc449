//! The router's connection and request limits under abuse: slowloris clients, 1,000 idle
//! connections and a flood of 4 MiB bodies at once, while a normal client keeps getting its
//! answers within its usual latency and the router's memory stays bounded (printed); the
//! connection cap answers 503; the request cap 429; the body budget 503.
#![allow(clippy::unwrap_used)]

mod abuse;
mod router_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use abuse::{closed_within, flood, idle_connections, median, rss_mib, slowloris};
use router_support::{backend, client, fetch, routes_yaml, sample, RouterProc};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn addr_of(router: &RouterProc) -> SocketAddr {
    router.url.trim_start_matches("http://").parse().unwrap()
}

async fn timed_who(http: &reqwest::Client, router: &RouterProc) -> Duration {
    let started = Instant::now();
    assert_eq!(
        fetch(http, &router.url, "/who").await,
        (200, "b".to_string())
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_normal_client_is_served_through_slowloris_idle_connections_and_a_body_flood() {
    let b = backend("b").await;
    let yaml = routes_yaml("", &[("b", 100, vec![b.url.clone()])]);
    let flags = [
        "--header-read-timeout-seconds",
        "2",
        "--idle-timeout-seconds",
        "5",
    ];
    let router = RouterProc::start_with(Some(&yaml), &flags).await;
    let pid = router.pid().unwrap();
    let http = client();
    let mut base: Vec<Duration> = Vec::new();
    for _ in 0..10 {
        base.push(timed_who(&http, &router).await);
    }
    let usual = median(&mut base);
    let rss_before = rss_mib(pid);

    let addr = addr_of(&router);
    let idle = idle_connections(addr, 1000).await;
    let slow = slowloris(addr, 100).await;
    let flood = flood(&format!("{}/v1/chat/completions", router.url), 8);
    let mut during = Vec::new();
    let mut rss_peak = rss_before;
    for _ in 0..20 {
        during.push(timed_who(&http, &router).await);
        rss_peak = rss_peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answers = flood.finish().await;
    let worst = *during.iter().max().unwrap();
    println!(
        "route under abuse: usual {usual:?}, worst {worst:?}, median {:?}; RSS {rss_before:.0} MiB before, {rss_peak:.0} MiB peak; flood answers [2xx, 4xx, 5xx, errors] {answers:?}",
        median(&mut during)
    );
    assert!(
        worst < usual * 10 + Duration::from_secs(2),
        "a normal request took {worst:?} (usual {usual:?})"
    );
    assert!(answers[0] > 0, "the flood was served too: {answers:?}");
    assert_eq!(
        answers[2] + answers[3],
        0,
        "no flood request failed: {answers:?}"
    );
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
    let page = router.metrics().await;
    assert!(
        sample(
            &page,
            r#"dsr_http_connection_timeouts_total{kind="header_read"}"#
        ) >= 100.0,
        "{page}"
    );
    assert!(
        sample(&page, r#"dsr_http_connection_timeouts_total{kind="idle"}"#) >= 1000.0,
        "{page}"
    );
    // Nothing leaks: once the idle limit has passed for every client's kept-alive connection,
    // the scrape's own (and perhaps the normal client's) is all that is left.
    let settled = deepseek_test_support::eventually(
        Duration::from_secs(8),
        Duration::from_millis(200),
        || async {
            let page = router.metrics().await;
            (sample(&page, "dsr_http_open_connections") <= 2.0).then_some(())
        },
    )
    .await;
    assert!(settled.is_some(), "{}", router.metrics().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_an_openai_shaped_503() {
    let b = backend("b").await;
    let yaml = routes_yaml("", &[("b", 100, vec![b.url.clone()])]);
    let router = RouterProc::start_with(Some(&yaml), &["--max-connections", "50"]).await;
    let idle = idle_connections(addr_of(&router), 50).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = client()
        .get(format!("{}/who", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    for c in &idle {
        c.abort();
    }
    let served = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let r = client()
                .get(format!("{}/who", router.url))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(served.is_some(), "served again once connections closed");
    let page = router.metrics().await;
    assert!(
        sample(&page, "dsr_http_connections_refused_total") >= 1.0,
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_cap_get_429_and_bodies_beyond_the_budget_503() {
    let b = backend("b").await;
    let yaml = routes_yaml("", &[("b", 100, vec![b.url.clone()])]);
    let flags = [
        "--max-concurrent-requests",
        "4",
        "--body-buffer-budget-bytes",
        "10485760",
    ];
    let router = RouterProc::start_with(Some(&yaml), &flags).await;
    let http = client();
    let stalls: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{}/stall", router.url));
            tokio::spawn(async move { http.get(url).send().await })
        })
        .collect();
    let page = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let page = router.metrics().await;
            (sample(&page, "dsr_router_in_flight_requests") == 4.0).then_some(page)
        },
    )
    .await;
    assert!(page.is_some(), "four stalled requests in flight");
    let resp = http
        .get(format!("{}/who", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "router_overloaded");
    for s in stalls {
        s.abort();
    }
    let freed = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let page = router.metrics().await;
            (sample(&page, "dsr_router_in_flight_requests") == 0.0).then_some(())
        },
    )
    .await;
    assert!(
        freed.is_some(),
        "the stalled requests' places came back when their clients left"
    );

    // Two declared 4 MiB bodies hold 8 MiB of the 10 MiB budget while they trickle in; a third
    // does not fit and is refused before it is read; a small body still fits.
    let url = format!("{}/v1/chat/completions", router.url);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = tokio::net::TcpStream::connect(addr_of(&router))
            .await
            .unwrap();
        let head =
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4194304\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        held.push(tcp);
    }
    let held_bytes = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let page = router.metrics().await;
            (sample(&page, "dsr_router_body_buffer_bytes") == 8.0 * 1048576.0).then_some(())
        },
    )
    .await;
    assert!(held_bytes.is_some(), "{}", router.metrics().await);
    let big = vec![b'a'; 4 * 1024 * 1024];
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_budget_exhausted");
    let small = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    drop(held);
    let again = deepseek_test_support::eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(big.clone())
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(
        again.is_some(),
        "the budget came back when the held bodies' clients left"
    );
    // At least the one above (a retry may have raced the held clients' departure).
    let page = router.metrics().await;
    let refused = |reason: &str| {
        sample(
            &page,
            &format!("dsr_router_refused_requests_total{{reason=\"{reason}\"}}"),
        )
    };
    assert!(refused("body_budget") >= 1.0, "{page}");
    assert_eq!(refused("concurrency"), 1.0, "{page}");
}
