//! The degradation cache keeps answers redacted: a scripted model answers with a phone number,
//! an email and a card number over real HTTP (JSON and SSE); the answer the client got is the
//! model's own (the model's output is not altered), but what the cache would replay under
//! overload holds only placeholders.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/scripted.rs"]
mod scripted;

use std::sync::Arc;

use common::{chat, stream_chat};
use deepseek_server::degrade::{request_key, Admission};
use deepseek_server::AppState;
use serde_json::json;

/// The reply, one piece per token.
const SCRIPT: &[&str] = &[
    "Call ",
    "138 1234 5678",
    " or mail ",
    "li.lei@example.com",
    ", card 4111 1111 1111 1111.",
];
const ANSWER: &str = "Call 138 1234 5678 or mail li.lei@example.com, card 4111 1111 1111 1111.";
const REDACTED: &str = "Call [PHONE] or mail [EMAIL], card [CARD].";

async fn server() -> (String, Arc<AppState>) {
    scripted::scripted_server(SCRIPT, None).await
}

/// What the cache would replay for the request `body` if the server were overloaded (the key
/// is the exact request, less how the reply is delivered).
fn cached(state: &AppState, body: &serde_json::Value) -> String {
    let req: deepseek_protocol::ChatCompletionRequest =
        serde_json::from_value(body.clone()).unwrap();
    match state.degrade.admit(usize::MAX, &request_key(&req), false) {
        Admission::Cached(answer) => answer.content,
        other => panic!("nothing cached for {body}: {other:?}"),
    }
}

#[tokio::test]
async fn answers_reach_the_client_whole_but_the_cache_keeps_them_redacted() {
    let (base, state) = server().await;
    let body = |content: &str, stream: bool| json!({"model": scripted::SCRIPTED_MODEL, "messages": [{"role": "user", "content": content}], "stream": stream});
    let v = chat(&base, &body("plain", false)).await;
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(cached(&state, &body("plain", false)), REDACTED);

    let (content, _, _, _) = stream_chat(&base, &body("streamed", true)).await;
    assert_eq!(content, ANSWER);
    assert_eq!(cached(&state, &body("streamed", true)), REDACTED);
}
