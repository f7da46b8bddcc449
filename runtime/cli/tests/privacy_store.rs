//! The conversation store and the data-subject endpoints over real HTTP, with the store in an
//! SQLite file and in a real PostgreSQL server started by the test: conversations are kept
//! redacted per subject; an export returns only that subject's; an erase removes them (checked
//! through a second connection to the same database) and returns a receipt; a second export is
//! empty; every action lands in the audit table; callers without the `admin` role are refused.
//! Plain, streamed and WebSocket chats are all recorded. Identity comes from the trusted test headers (`--trust-identity-headers`), standing in for
//! the auth layer's `Principal`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod privacy_support;

use std::sync::Arc;
use std::time::Duration;

use common::{fake_server, FakeServerConfig, FAKE_MODEL_NAME};
use deepseek_privacy::store::ConversationStore;
use deepseek_server::privacy::{Privacy, PrivacyArgs};
use serde_json::{json, Value};

const ALICE_PHONE: &str = "13812345678";
const ALICE_MAIL: &str = "alice@example.com";

async fn server_with_store(url: &str) -> String {
    let args = PrivacyArgs {
        conversation_store: Some(url.into()),
        conversation_retention_secs: 3600,
        privacy_endpoints: true,
        trust_identity_headers: true,
        privacy_recipients: vec!["internal support team".into()],
        ..Default::default()
    };
    let privacy = Privacy::from_args(&args).unwrap();
    privacy.open_store().await.unwrap();
    fake_server(FakeServerConfig {
        privacy: Arc::new(privacy),
        ..Default::default()
    })
    .await
}

async fn chat_as(base: &str, subject: &str, content: &str, stream: bool) {
    let body = json!({"model": FAKE_MODEL_NAME, "messages": [{"role": "user", "content": content}],
                      "max_tokens": 3, "stream": stream});
    let resp = common::client()
        .post(format!("{base}/v1/chat/completions"))
        .header("x-dsr-subject", subject)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
}

/// One chat request over the WebSocket, as `subject`; waits for its `done` frame.
async fn chat_ws_as(base: &str, subject: &str, content: &str) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = format!("{}/ws/chat", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-dsr-subject", subject.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let frame = json!({"id": "1", "model": FAKE_MODEL_NAME, "max_tokens": 3,
                       "messages": [{"role": "user", "content": content}]});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "done" {
                return;
            }
        }
    }
    panic!("the WebSocket closed before the answer was done");
}

/// `method path` as `actor` with `roles`; no identity headers when `actor` is empty.
async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    actor: &str,
    roles: &str,
) -> (u16, Value) {
    let mut req = common::client().request(method, format!("{base}{path}"));
    if !actor.is_empty() {
        req = req
            .header("x-dsr-subject", actor)
            .header("x-dsr-roles", roles);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn export(base: &str, subject: &str) -> Vec<Value> {
    let path = format!("/v1/privacy/subjects/{subject}/conversations");
    let (status, v) = call(base, reqwest::Method::GET, &path, "dpo", "admin").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["subject"], subject);
    v["conversations"].as_array().unwrap().clone()
}

/// Waits until the subject has `n` stored conversations (they are written in the background).
async fn exported(base: &str, subject: &str, n: usize) -> Vec<Value> {
    let got = deepseek_test_support::eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let list = export(base, subject).await;
            (list.len() >= n).then_some(list)
        },
    )
    .await;
    got.unwrap_or_else(|| panic!("{subject} never had {n} conversations"))
}

/// The whole data-subject flow against a server whose store is at `url`.
async fn export_erase_and_audit(url: &str) {
    let base = server_with_store(url).await;
    chat_as(
        &base,
        "alice",
        &format!("My phone is {ALICE_PHONE}, mail {ALICE_MAIL}"),
        false,
    )
    .await;
    chat_as(&base, "alice", "Second question, streamed", true).await;
    chat_ws_as(&base, "alice", "Third, over the WebSocket from 10.1.2.3").await;
    chat_as(&base, "bob", "Card 4111 1111 1111 1111 is mine", false).await;

    let alice = exported(&base, "alice", 3).await;
    assert_eq!(alice.len(), 3);
    let text = serde_json::to_string(&alice).unwrap();
    assert!(alice.iter().all(|c| c["subject"] == "alice"), "{text}");
    assert!(
        !text.contains("4111") && !text.contains("bob"),
        "only alice's data: {text}"
    );
    assert!(
        !text.contains(ALICE_PHONE) && !text.contains(ALICE_MAIL),
        "stored redacted: {text}"
    );
    assert!(!text.contains("10.1.2.3"), "stored redacted: {text}");
    assert!(
        text.contains("[PHONE]") && text.contains("[EMAIL]") && text.contains("[IP]"),
        "{text}"
    );
    assert!(alice
        .iter()
        .all(|c| c["expires_at"].as_i64().unwrap() - c["created_at"].as_i64().unwrap() == 3600));
    let bob = exported(&base, "bob", 1).await;
    assert!(serde_json::to_string(&bob).unwrap().contains("[CARD]"));

    let path = "/v1/privacy/subjects/alice";
    assert_eq!(
        call(&base, reqwest::Method::DELETE, path, "", "").await.0,
        401
    );
    let (status, v) = call(&base, reqwest::Method::DELETE, path, "alice", "chat").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("permission_denied")),
        "{v}"
    );
    let (status, receipt) = call(&base, reqwest::Method::DELETE, path, "dpo", "admin").await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["object"], "privacy.erasure_receipt");
    assert_eq!(receipt["erased_conversations"], 3);
    assert!(receipt["receipt_id"]
        .as_str()
        .unwrap()
        .starts_with("audit-"));

    assert!(
        export(&base, "alice").await.is_empty(),
        "a second export is empty"
    );
    assert_eq!(export(&base, "bob").await.len(), 1, "bob's data stays");

    // What is on disk, through a connection of its own.
    let store = ConversationStore::open(url).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(store.export("alice", now).await.unwrap().is_empty());
    assert_eq!(store.export("bob", now).await.unwrap().len(), 1);
    let audit = store.audit_log().await.unwrap();
    let erase = audit
        .iter()
        .find(|e| e.action == "erase")
        .expect("erase audited");
    assert_eq!(
        (erase.actor.as_str(), erase.subject.as_str()),
        ("dpo", "alice")
    );
    assert_eq!(erase.id, receipt["receipt_id"].as_str().unwrap());
    assert!(audit.iter().filter(|e| e.action == "export").count() >= 3);

    let (status, record) = call(
        &base,
        reqwest::Method::GET,
        "/v1/privacy/processing-activities",
        "dpo",
        "admin",
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let activity = &record["activities"][0];
    assert_eq!(activity["storage"]["retention_secs"], 3600);
    assert_eq!(activity["recipients"], json!(["internal support team"]));
    assert_eq!(
        activity["redacted_before_logging_or_storage"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(activity["model_input_redacted"], false);
}

#[tokio::test]
async fn sqlite_store_exports_erases_and_audits_per_subject() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("conversations.db").display());
    export_erase_and_audit(&url).await;
}

#[tokio::test]
async fn postgres_store_exports_erases_and_audits_per_subject() {
    let pg = privacy_support::Postgres::start().await;
    export_erase_and_audit(&pg.url).await;
}

#[tokio::test]
async fn privacy_endpoints_are_off_unless_configured() {
    let base = fake_server(FakeServerConfig::default()).await;
    let (status, v) = call(
        &base,
        reqwest::Method::GET,
        "/v1/privacy/processing-activities",
        "dpo",
        "admin",
    )
    .await;
    assert_eq!(status, 404, "{v}");
}
