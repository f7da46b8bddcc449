//! Streaming goes through the router as it is produced: SSE chunks arrive one by one while
//! the backend is still generating, and a WebSocket chat is tunnelled both ways.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use router_support::{backend, client, routes_yaml, RouterProc, STREAM_CHUNKS, STREAM_GAP};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_chunks_pass_through_before_the_backend_finishes() {
    let b = backend("b").await;
    let router = RouterProc::start(&routes_yaml("", &[("b", 100, vec![b.url.clone()])])).await;
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/stream", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-dsr-revision"], "b");
    let mut body = resp.bytes_stream();
    let (mut text, mut arrivals) = (String::new(), Vec::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        arrivals.push((started.elapsed(), text.matches("\n\n").count()));
    }
    let whole = STREAM_GAP * (STREAM_CHUNKS as u32 - 1);
    let first = arrivals.iter().find(|(_, events)| *events >= 1).unwrap().0;
    assert!(
        first < whole / 2,
        "first event after {first:?}; backend needs {whole:?}"
    );
    assert!(
        started.elapsed() >= whole,
        "the whole stream took {:?}",
        started.elapsed()
    );
    // Each event left on its own: the count of events grew in at least STREAM_CHUNKS steps.
    let distinct: std::collections::BTreeSet<usize> = arrivals.iter().map(|a| a.1).collect();
    assert_eq!(distinct.len(), STREAM_CHUNKS, "{arrivals:?}");
    assert_eq!(text.matches("data: ").count(), STREAM_CHUNKS);
    let s = router.revision_stats("b", 1).await;
    assert_eq!(s["requests"], 1);
    assert!(s["latency_seconds"]["sum"].as_f64().unwrap() >= whole.as_secs_f64() * 0.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_chat_passes_through_both_ways() {
    let b = backend("b").await;
    let router = RouterProc::start(&routes_yaml("", &[("b", 100, vec![b.url.clone()])])).await;
    let ws_url = format!("{}/ws/chat", router.url.replacen("http", "ws", 1));
    let (mut socket, resp) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        socket
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("b: hello {i}"));
    }
    socket.close(None).await.unwrap();
    let s = router.revision_stats("b", 1).await;
    assert_eq!(s["requests"], 1);
    assert_eq!(s["errors"]["upstream_5xx"], 0);
}
