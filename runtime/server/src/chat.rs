//! `POST /v1/chat/completions`: body parsing (OpenAI-shaped rejections), validation, submission,
//! and the non-streaming reply. Streaming replies are shaped in `sse`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio::sync::mpsc;

use super::degrade::{prompt_key, Admission, CachedAnswer, PromptKey};
use super::degrade::{DEGRADED_CACHED, DEGRADED_HEADER};
use super::privacy::identity;
use super::reasoning::{ReplySplitter, Split};
use super::{sse, ApiError, AppState};
use deepseek_engine::engine::{Event, GenerationRequest, TokenUsage};
use deepseek_http::Principal;
use deepseek_protocol::validate::{validate, ValidRequest};
use deepseek_protocol::{AssistantMessage, ChatCompletion, ChatCompletionRequest, Choice, Usage};

pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let subject = subject_of(&st, principal, &headers);
    let result = async {
        let req = parse_body(&headers, body, st.max_body_bytes)?;
        let valid = validate_blocking(&st, req).await?;
        let key = prompt_key(&st.limits.served_model_name, &valid.messages);
        match st.degrade.admit(st.engine.queued(), &key, valid.stream) {
            Admission::Generate => {
                let rx = submit(&st, &valid)?;
                Ok((valid, rx, Some(key), false))
            }
            Admission::Cached(answer) => {
                st.metrics.degraded.with_label_values(&["cached"]).inc();
                let rx = replay(&valid, answer);
                Ok((valid, rx, None, true))
            }
            Admission::Shed { waiting } => {
                st.metrics.degraded.with_label_values(&["shed"]).inc();
                Err(ApiError::Overloaded { waiting })
            }
        }
    }
    .await;
    let (valid, rx, key, cached) = match result {
        Ok(admitted) => admitted,
        Err(e) => return error_response(&st, e),
    };
    let mut resp = if valid.stream {
        sse::stream_reply(st, valid, rx, started, key, subject).into_response()
    } else {
        match collect_reply(&st, rx, started, key).await {
            Ok(reply) => {
                let answer = &reply.choices[0].message.content;
                let model = &st.limits.served_model_name;
                st.privacy
                    .record(subject.as_deref(), model, &valid.messages, answer);
                Json(reply).into_response()
            }
            Err(e) => error_response(&st, e),
        }
    };
    if cached {
        resp.headers_mut()
            .insert(DEGRADED_HEADER, HeaderValue::from_static(DEGRADED_CACHED));
    }
    resp
}

/// The data subject whose conversation this is: the authenticated principal's, or the
/// trusted identity header's where `--trust-identity-headers` allows it.
pub fn subject_of(
    st: &AppState,
    principal: Option<Extension<Principal>>,
    headers: &HeaderMap,
) -> Option<String> {
    let mut extensions = axum::http::Extensions::new();
    if let Some(Extension(p)) = principal {
        extensions.insert(p);
    }
    let trust = st.privacy.config.trust_identity_headers;
    identity::caller(&extensions, headers, trust).map(|p| p.subject)
}

/// A cached answer as the engine events that would have produced it, so it leaves through the
/// same reply paths (JSON or SSE) as a generated one.
fn replay(valid: &ValidRequest, answer: CachedAnswer) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    let usage = TokenUsage {
        prompt_tokens: valid.prompt_tokens.len(),
        completion_tokens: answer.completion_tokens,
    };
    // The receiver is alive (returned below), so these sends cannot fail.
    let _ = tx.send(Event::Text(answer.content));
    let _ = tx.send(Event::Finished {
        reason: answer.finish_reason,
        usage,
    });
    rx
}

/// Records the error in the metrics and shapes it.
pub fn error_response(st: &AppState, e: ApiError) -> Response {
    st.metrics.errors.with_label_values(&[e.code()]).inc();
    e.into_response()
}

/// JSON only: a missing or any other content type is a 415 (an HTML form can post
/// `text/plain` cross-site without a preflight; see `deepseek_http::is_json`).
pub fn parse_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<ChatCompletionRequest, ApiError> {
    if !deepseek_http::is_json(headers) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .map_or("(none)".into(), |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            });
        return Err(ApiError::UnsupportedMediaType(ct));
    }
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit },
        _ => ApiError::InvalidJson(rejection.body_text()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// Rendering the template and tokenizing are CPU work: keep them off the async workers.
pub async fn validate_blocking(
    st: &Arc<AppState>,
    req: ChatCompletionRequest,
) -> Result<ValidRequest, ApiError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || validate(&req, &st.limits, st.prompt.as_ref()))
        .await
        .map_err(|e| ApiError::Generation(format!("validation task failed: {e}")))?
        .map_err(ApiError::from)
}

pub fn submit(
    st: &AppState,
    valid: &ValidRequest,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    if !st.engine.is_ready() {
        return Err(ApiError::NotReady);
    }
    let rx = st.engine.submit(GenerationRequest {
        prompt_tokens: valid.prompt_tokens.clone(),
        max_tokens: valid.max_tokens,
        sampling: valid.sampling.clone(),
        stop: valid.stop.clone(),
        ignore_eos: valid.ignore_eos,
    })?;
    Ok(rx)
}

/// Waits for the whole answer; remembers it under `key` for the overload policy.
async fn collect_reply(
    st: &AppState,
    mut rx: mpsc::UnboundedReceiver<Event>,
    started: Instant,
    key: Option<PromptKey>,
) -> Result<ChatCompletion, ApiError> {
    let mut text = String::new();
    let mut reasoning = String::new();
    // What the model wrote, before splitting: a replayed answer goes through the splitter again.
    let mut raw = String::new();
    let mut splitter = ReplySplitter::new(st.prompt.reasoning());
    let mut take = |s: Split| {
        reasoning.push_str(&s.reasoning);
        text.push_str(&s.content);
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => {
                if key.is_some() {
                    raw.push_str(&t);
                }
                take(splitter.push(t))
            }
            Event::Failed(e) => return Err(ApiError::Generation(e)),
            Event::Finished { reason, usage } => {
                take(splitter.finish());
                st.metrics
                    .request_duration
                    .observe(started.elapsed().as_secs_f64());
                if let Some(key) = key {
                    st.degrade.remember(
                        key,
                        CachedAnswer {
                            // Kept for minutes and replayed to others: no personal data in it.
                            content: st.privacy.redact(&raw),
                            finish_reason: reason,
                            completion_tokens: usage.completion_tokens,
                        },
                    );
                }
                return Ok(ChatCompletion {
                    id: completion_id(),
                    object: "chat.completion".into(),
                    created: now_secs(),
                    model: st.limits.served_model_name.clone(),
                    choices: vec![Choice {
                        index: 0,
                        message: AssistantMessage {
                            role: "assistant".into(),
                            content: text,
                            reasoning_content: splitter.enabled().then_some(reasoning),
                        },
                        finish_reason: Some(reason.as_str().into()),
                        logprobs: None,
                    }],
                    usage: usage_of(usage),
                });
            }
        }
    }
    Err(ApiError::EngineStopped)
}

pub fn usage_of(u: deepseek_engine::engine::TokenUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens as u32,
        completion_tokens: u.completion_tokens as u32,
        total_tokens: (u.prompt_tokens + u.completion_tokens) as u32,
    }
}

pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
