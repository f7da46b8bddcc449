//! Request integrity at the runtime and at the router: a WebSocket upgrade from a browser
//! origin that is not on `--allowed-origins` gets an OpenAI-shaped 403 (upgrades without
//! `Origin`, from SDKs and curl, pass), and a chat POST that is not `application/json` gets a
//! 415 before it reaches a model.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod router_support;

use std::sync::atomic::Ordering;

use common::{fake_server, FakeServerConfig};
use router_support::{backend, routes_yaml, RouterProc};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

const ALLOWED: &str = "https://chat.example.com";

/// Opens `/ws/chat` with `origin` (none when `None`): Ok, or the refusal's status and body.
async fn ws_open(base: &str, origin: Option<&str>) -> Result<(), (u16, Value)> {
    let url = format!("{}/ws/chat", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Err((resp.status().as_u16(), v))
        }
        Err(e) => panic!("unexpected WebSocket failure: {e}"),
    }
}

fn assert_origin_refused(r: Result<(), (u16, Value)>) {
    let (status, body) = r.expect_err("an unlisted browser origin must be refused");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
}

#[tokio::test]
async fn the_runtime_refuses_websockets_from_unlisted_browser_origins() {
    let base = fake_server(FakeServerConfig {
        origins: deepseek_http::OriginPolicy::new(&[ALLOWED]),
        ..Default::default()
    })
    .await;
    assert_origin_refused(ws_open(&base, Some("https://evil.example")).await);
    assert_origin_refused(ws_open(&base, Some("null")).await);
    ws_open(&base, Some(ALLOWED)).await.unwrap();
    ws_open(&base, None).await.unwrap();

    let default = fake_server(FakeServerConfig::default()).await;
    assert_origin_refused(ws_open(&default, Some(ALLOWED)).await);
    ws_open(&default, None).await.unwrap();
}

#[tokio::test]
async fn the_router_checks_origin_and_content_type_before_forwarding() {
    let b = backend("stable").await;
    let yaml = routes_yaml("", &[("stable", 100, vec![b.url.clone()])]);
    let router = RouterProc::start_with_env(&yaml, &[("DSR_ALLOWED_ORIGINS", ALLOWED)]).await;

    assert_origin_refused(ws_open(&router.url, Some("https://evil.example")).await);
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "the refusal never reached a backend"
    );
    ws_open(&router.url, Some(ALLOWED)).await.unwrap();
    ws_open(&router.url, None).await.unwrap();

    let http = router_support::client();
    let url = format!("{}/v1/chat/completions", router.url);
    let hits_before = b.hits.load(Ordering::SeqCst);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut post = http.post(&url).body(r#"{"messages":[]}"#);
        if let Some(ct) = ct {
            post = post.header("content-type", ct);
        }
        let resp = post.send().await.unwrap();
        assert_eq!(resp.status(), 415, "{ct:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unsupported_media_type", "{ct:?}");
    }
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        hits_before,
        "no 415 reached a backend"
    );
    let ok = http
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "stable");
}
