//! SIGTERM against `serve` while 32 SSE streams and 8 WebSocket chats are open (some running,
//! some still queued): every one finishes or gets a clean error, none is cut silently, and the
//! process exits 0. Before the fix the WebSocket chats were cut: axum does not track upgraded
//! connections, so `serve` returned (and the process exited) while they were mid-reply.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod chaos_support;

use std::time::Duration;

use chaos_support::*;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn ws_next_frame(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

const SSE_STREAMS: usize = 32;
const WS_CHATS: usize = 8;

#[tokio::test]
async fn sigterm_drains_open_sse_streams_and_websocket_chats() {
    let mut serve = Serve::start(&["--shutdown-grace-secs", "120"]).await;
    let client = client();
    let mut sse = Vec::new();
    let mut opened = Vec::new();
    for i in 0..SSE_STREAMS {
        let (client, url) = (client.clone(), serve.url.clone());
        let body = chat_body(&format!("Count to ten, attempt {i}."), 8, true);
        let (tx, rx) = tokio::sync::oneshot::channel();
        opened.push(rx);
        sse.push(tokio::spawn(async move {
            stream_chat(&client, &url, &body, Some(tx)).await.0
        }));
    }
    let mut ws = Vec::new();
    for i in 0..WS_CHATS {
        let url = serve.url.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        opened.push(rx);
        ws.push(tokio::spawn(async move {
            let mut socket = ws_connect(&url).await;
            // Much longer than the SSE replies: they outlast the HTTP connections axum waits
            // for, so a server that stops at that point cuts them.
            let mut body = chat_body(&format!("Name a colour, attempt {i}."), 200, false);
            let id = format!("chat-{i}");
            body["id"] = json!(id);
            // The model would end a short answer at EOS long before 200 tokens.
            body["ignore_eos"] = json!(true);
            ws_send(&mut socket, &body).await;
            // Running (a first delta came) before the signal.
            let first = ws_next_frame(&mut socket).await;
            assert_eq!(
                (first["type"].as_str(), first["id"].as_str()),
                (Some("delta"), Some(id.as_str())),
                "{first}"
            );
            let _ = tx.send(());
            ws_ending(&mut socket, &id).await
        }));
    }
    for rx in opened {
        rx.await.unwrap();
    }
    serve.sigterm();

    let mut endings = Vec::new();
    for t in sse.into_iter().chain(ws) {
        endings.push(t.await.unwrap());
    }
    let finished = endings
        .iter()
        .filter(|e| matches!(e, Ending::Finished(_)))
        .count();
    let errors = endings
        .iter()
        .filter(|e| matches!(e, Ending::Error(_)))
        .count();
    println!(
        "after SIGTERM: {finished} finished, {errors} clean errors of {}",
        endings.len()
    );
    for e in &endings {
        assert!(
            matches!(e, Ending::Finished(_) | Ending::Error(_)),
            "cut silently: {e:?}"
        );
    }
    let exit = tokio::time::timeout(Duration::from_secs(120), serve.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
