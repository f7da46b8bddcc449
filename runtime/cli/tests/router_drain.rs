//! SIGTERM to the router during open SSE streams and WebSocket chats: the router stops
//! accepting, every stream that can finish within the drain finishes, one that cannot ends
//! with an OpenAI-shaped error event and `[DONE]`, and every WebSocket chat keeps working
//! until it gets a clean close (1001, going away) at the drain deadline. None is cut silently,
//! and the router exits 0.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use router_support::{backend, client, routes_yaml, RouterProc, STREAM_CHUNKS};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const STREAMS: usize = 32;
const ENDLESS: usize = 2;
const CHATS: usize = 8;
const GRACE_SECS: u64 = 3;

/// Reads an SSE response to its end; the payloads, or the transport error that cut it.
async fn read_events(resp: reqwest::Response) -> Result<Vec<String>, String> {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("cut after {text:?}: {e}"))?;
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    Ok(text
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data:").map(|d| d.trim().to_string()))
        .collect())
}

/// Sends a message every 200 ms and checks each echo until the socket closes; the close code.
async fn chat_until_closed(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<(CloseCode, usize), String> {
    let mut echoed = 0;
    loop {
        let text = format!("message {echoed}");
        if socket.send(Message::text(text.clone())).await.is_err() {
            // The close frame may already be waiting; read it below.
        }
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Err(_) => return Err("no reply and no close within 10 s".into()),
            Ok(None) => return Err(format!("cut without a close frame after {echoed}")),
            Ok(Some(Err(e))) => return Err(format!("cut after {echoed}: {e}")),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame
                    .map(|f| f.code)
                    .ok_or("a close frame without a code")?;
                return Ok((code, echoed));
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                assert_eq!(t.as_str(), format!("b: {text}"));
                echoed += 1;
            }
            Ok(Some(Ok(_))) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_and_closes_websockets_cleanly() {
    let b = backend("b").await;
    let grace = GRACE_SECS.to_string();
    let mut router = RouterProc::start_with(
        Some(&routes_yaml("", &[("b", 100, vec![b.url.clone()])])),
        &["--shutdown-grace-secs", &grace],
    )
    .await;
    let http = client();
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let path = if i < ENDLESS { "/endless" } else { "/stream" };
        let resp = http
            .get(format!("{}{path}", router.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(tokio::spawn(read_events(resp)));
    }
    let ws_url = format!("{}/ws/chat", router.url.replacen("http", "ws", 1));
    let mut chats = Vec::new();
    for _ in 0..CHATS {
        let (socket, resp) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        assert_eq!(resp.status(), 101);
        chats.push(tokio::spawn(chat_until_closed(socket)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminated = Instant::now();
    router.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        client()
            .get(format!("{}/who", router.url))
            .send()
            .await
            .is_err(),
        "no new connections while draining"
    );

    for (i, s) in streams.into_iter().enumerate() {
        let events = s
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("stream {i}: {e}"));
        if i < ENDLESS {
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "stream {i}"
            );
            let error = &events[events.len() - 2];
            assert!(
                error.contains("router_shutting_down"),
                "stream {i}: {events:?}"
            );
        } else {
            assert_eq!(
                events.len(),
                STREAM_CHUNKS,
                "stream {i} finished: {events:?}"
            );
        }
    }
    for (i, c) in chats.into_iter().enumerate() {
        let (code, echoed) = c.await.unwrap().unwrap_or_else(|e| panic!("chat {i}: {e}"));
        assert_eq!(code, CloseCode::Away, "chat {i}");
        assert!(
            echoed >= 5,
            "chat {i} kept working while draining: {echoed}"
        );
    }
    let waited = terminated.elapsed();
    assert!(
        waited >= Duration::from_secs(GRACE_SECS) - Duration::from_millis(200),
        "the chats lasted until the drain deadline: {waited:?}"
    );
    assert_eq!(router.exit_code(Duration::from_secs(10)).await, Some(0));
}
