//! `POST /v1/chat/completions`: body parsing (OpenAI-shaped rejections), admission, validation,
//! submission, and the non-streaming reply. Streaming replies are shaped in `sse`.
//!
//! Admission comes first and is cheap: a concurrency slot, the engine's health, the queue and
//! the overload policy are checked before the chat template is rendered and the prompt
//! tokenised, so refused requests cost no CPU under overload.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio::sync::mpsc;

use super::degrade::{request_key, Admission, CachedAnswer, PromptKey};
use super::degrade::{DEGRADED_CACHED, DEGRADED_HEADER};
use super::privacy::identity;
use super::reasoning::{ReplySplitter, Split};
use super::wait::{next_event, Clock, Next};
use super::{sse, ApiError, AppState};
use deepseek_engine::engine::health::EngineState;
use deepseek_engine::engine::{Event, GenerationRequest, TokenUsage};
use deepseek_http::Principal;
use deepseek_protocol::validate::{validate, PromptMessage, ValidRequest};
use deepseek_protocol::{AssistantMessage, ChatCompletion, ChatCompletionRequest, Choice, Usage};

/// A request past admission: its events, and what to remember the answer under.
pub struct Admitted {
    pub rx: mpsc::UnboundedReceiver<Event>,
    /// Where a complete answer is remembered (None for replays).
    pub remember: Option<PromptKey>,
    /// Answered from the overload cache.
    pub cached: bool,
    pub include_usage: bool,
    /// The conversation to record in the privacy store once answered (None for replays).
    pub record: Option<Vec<PromptMessage>>,
}

pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let subject = subject_of(&st, principal, &headers);
    let permit = match st.live.try_permit() {
        Ok(p) => p,
        Err(e) => return error_response(&st, e),
    };
    let result = async {
        let req = parse_body(&headers, body, st.max_body_bytes)?;
        let stream = req.stream.unwrap_or(false);
        Ok::<_, ApiError>((admit_and_submit(&st, req, stream).await?, stream))
    }
    .await;
    let (mut admitted, stream) = match result {
        Ok(a) => a,
        Err(e) => return error_response(&st, e),
    };
    let cached = admitted.cached;
    let mut resp = if stream {
        sse::stream_reply(st, admitted, started, permit, subject).into_response()
    } else {
        let record = admitted.record.take();
        let reply = collect_reply(&st, admitted, started).await;
        drop(permit);
        match reply {
            Ok(reply) => {
                if let Some(messages) = &record {
                    let answer = &reply.choices[0].message.content;
                    let model = &st.limits.served_model_name;
                    st.privacy
                        .record(subject.as_deref(), model, messages, answer);
                }
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

/// The engine can take work: ready, not draining, the queue not full. Checked before any CPU
/// is spent on the request.
pub fn check_capacity(st: &AppState) -> Result<(), ApiError> {
    if st.live.shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    match st.engine.state() {
        EngineState::Ready => {}
        EngineState::WarmingUp => return Err(ApiError::NotReady),
        dead => return Err(ApiError::EngineUnavailable(dead.as_str())),
    }
    let waiting = st.engine.queued();
    if st.engine.queue_is_full() {
        return Err(ApiError::QueueFull(waiting));
    }
    Ok(())
}

/// Admission (capacity, then the overload policy on the request's exact key), and only then
/// the template, tokenisation and submission. HTTP and WebSocket requests both come here;
/// `stream` says whether the reply streams (the overload cache serves streams only when told).
pub async fn admit_and_submit(
    st: &Arc<AppState>,
    req: ChatCompletionRequest,
    stream: bool,
) -> Result<Admitted, ApiError> {
    check_capacity(st)?;
    let key = request_key(&req);
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    match st.degrade.admit(st.engine.queued(), &key, stream) {
        Admission::Generate => {
            let valid = validate_blocking(st, req).await?;
            let rx = submit(st, &valid)?;
            Ok(Admitted {
                rx,
                remember: Some(key),
                cached: false,
                include_usage: valid.include_usage,
                record: Some(valid.messages),
            })
        }
        Admission::Cached(answer) => {
            st.metrics.degraded.with_label_values(&["cached"]).inc();
            Ok(Admitted {
                rx: replay(answer),
                remember: None,
                cached: true,
                include_usage,
                // A replay of another conversation's answer: not stored as this one's.
                record: None,
            })
        }
        Admission::Shed { waiting } => {
            st.metrics.degraded.with_label_values(&["shed"]).inc();
            Err(ApiError::Overloaded { waiting })
        }
    }
}

/// A cached answer as the engine events that would have produced it, so it leaves through the
/// same reply paths (JSON or SSE) as a generated one.
fn replay(answer: CachedAnswer) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    let usage = TokenUsage {
        prompt_tokens: answer.prompt_tokens,
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
        .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))?
        .map_err(ApiError::from)
}

pub fn submit(
    st: &AppState,
    valid: &ValidRequest,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    check_capacity(st)?;
    let rx = st.engine.submit(GenerationRequest {
        prompt_tokens: valid.prompt_tokens.clone(),
        max_tokens: valid.max_tokens,
        sampling: valid.sampling.clone(),
        stop: valid.stop.clone(),
        ignore_eos: valid.ignore_eos,
    })?;
    Ok(rx)
}

/// Waits for the whole answer (under the request's deadlines); remembers it for the overload
/// policy.
async fn collect_reply(
    st: &AppState,
    admitted: Admitted,
    started: Instant,
) -> Result<ChatCompletion, ApiError> {
    let Admitted {
        mut rx,
        remember: key,
        ..
    } = admitted;
    let mut clock = Clock::new(st, started);
    let mut text = String::new();
    let mut reasoning = String::new();
    // What the model wrote, before splitting: a replayed answer goes through the splitter again.
    let mut raw = String::new();
    let mut splitter = ReplySplitter::new(st.prompt.reasoning());
    let mut take = |s: Split| {
        reasoning.push_str(&s.reasoning);
        text.push_str(&s.content);
    };
    loop {
        let Next::Event(ev) = next_event(st, &mut rx, &mut clock, None).await? else {
            continue;
        };
        match ev {
            Event::Text(t) => {
                if key.is_some() {
                    raw.push_str(&t);
                }
                take(splitter.push(t))
            }
            Event::Failed(e) => return Err(ApiError::internal(e)),
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
                            prompt_tokens: usage.prompt_tokens,
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
