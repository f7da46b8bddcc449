//! The router splits real HTTP traffic by weight: exact over many requests, sticky per
//! session header, and its `/admin/stats` and `/metrics` agree with what was sent.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::collections::HashMap;

use router_support::{backend, client, fetch, routes_yaml, sample, RouterProc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weights_10_90_give_the_canary_ten_percent_of_2000_requests() {
    let (canary, stable) = (backend("canary").await, backend("stable").await);
    let router = RouterProc::start(&routes_yaml(
        "",
        &[
            ("canary", 10, vec![canary.url.clone()]),
            ("stable", 90, vec![stable.url.clone()]),
        ],
    ))
    .await;
    let http = client();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (http, url) = (http.clone(), router.url.clone());
            tokio::spawn(async move {
                let mut seen = HashMap::<String, usize>::new();
                for _ in 0..125 {
                    let (status, body) = fetch(&http, &url, "/who").await;
                    assert_eq!(status, 200, "{body}");
                    *seen.entry(body).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let mut total = HashMap::<String, usize>::new();
    for w in workers {
        for (k, v) in w.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    let to_canary = total.get("canary").copied().unwrap_or(0);
    assert_eq!(to_canary + total.get("stable").copied().unwrap_or(0), 2000);
    assert!(
        (160..=240).contains(&to_canary),
        "canary got {to_canary} of 2000"
    );
    // Smooth weighted round robin is exact, not just close.
    assert_eq!(to_canary, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_session_header_always_reaches_the_same_revision() {
    let (a, b) = (backend("a").await, backend("b").await);
    let router = RouterProc::start(&routes_yaml(
        "sessionHeader: X-Conversation",
        &[
            ("a", 10, vec![a.url.clone()]),
            ("b", 90, vec![b.url.clone()]),
        ],
    ))
    .await;
    let http = client();
    let ask = |session: String| {
        let (http, url) = (http.clone(), router.url.clone());
        async move {
            let resp = http
                .get(format!("{url}/who"))
                .header("x-conversation", session)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    for session in ["alpha", "beta", "gamma", "delta"] {
        let first = ask(session.to_string()).await;
        for _ in 0..30 {
            assert_eq!(
                ask(session.to_string()).await,
                first,
                "session {session} moved"
            );
        }
    }
    let mut to_a = 0;
    for i in 0..1000 {
        if ask(format!("conversation-{i}")).await == "a" {
            to_a += 1;
        }
    }
    assert!(
        (60..=140).contains(&to_a),
        "revision a got {to_a} of 1000 sessions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_and_metrics_match_what_was_sent() {
    let (a, b) = (backend("a").await, backend("b").await);
    let router = RouterProc::start(&routes_yaml(
        "",
        &[
            ("a", 50, vec![a.url.clone()]),
            ("b", 50, vec![b.url.clone()]),
        ],
    ))
    .await;
    let http = client();
    // Alternating picks: a, b, a, b... so each revision gets 10 of each kind.
    for (path, status) in [("/who", 200), ("/status/500", 500), ("/status/404", 404)] {
        for _ in 0..20 {
            assert_eq!(fetch(&http, &router.url, path).await.0, status);
        }
    }
    for name in ["a", "b"] {
        let s = router.revision_stats(name, 30).await;
        assert_eq!(s["weight"], 50);
        assert_eq!(s["requests"], 30, "{s}");
        assert_eq!(s["errors"]["upstream_5xx"], 10, "{s}");
        assert_eq!(s["errors"]["client_4xx"], 10, "{s}");
        assert_eq!(s["errors"]["connect"], 0, "{s}");
        assert_eq!(s["errors"]["timeout"], 0, "{s}");
        assert_eq!(s["latency_seconds"]["count"], 30, "{s}");
        assert_eq!(s["latency_seconds"]["bounds"].as_array().unwrap().len(), 12);
        assert_eq!(s["latency_seconds"]["cumulative_counts"][11], 30, "{s}");
    }
    let page = router.metrics().await;
    for name in ["a", "b"] {
        let req = |class: &str| {
            sample(
                &page,
                &format!(r#"dsr_router_requests_total{{code_class="{class}",revision="{name}"}}"#),
            )
        };
        assert_eq!(
            (req("2xx"), req("4xx"), req("5xx")),
            (10.0, 10.0, 10.0),
            "{page}"
        );
        let errors = sample(
            &page,
            &format!(r#"dsr_router_errors_total{{class="upstream_5xx",revision="{name}"}}"#),
        );
        assert_eq!(errors, 10.0, "{page}");
        let count = sample(
            &page,
            &format!(r#"dsr_router_request_duration_seconds_count{{revision="{name}"}}"#),
        );
        assert_eq!(count, 30.0, "{page}");
        assert_eq!(
            sample(
                &page,
                &format!(r#"dsr_router_route_weight{{revision="{name}"}}"#)
            ),
            50.0
        );
    }
    assert_eq!(a.hits.load(std::sync::atomic::Ordering::SeqCst), 30);
}
