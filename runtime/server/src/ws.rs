//! `GET /ws/chat`: chat over one WebSocket. Each text frame is a chat request (the HTTP body plus
//! an optional `id`; without one the server assigns an id and echoes it in every reply frame) or
//! `{"type":"cancel","id":..}`; replies are `delta`, then one `done` or `error` frame tagged with
//! the request's id. Protocol in README "WebSocket chat".
//!
//! The HTTP rules hold here too: the same admission (concurrency slot, engine health, queue,
//! overload policy before the template is rendered), the same deadlines, and every request that
//! cannot finish (engine stopped, deadline, shutdown) gets an `error` frame. One socket has at
//! most `--ws-max-in-flight` requests running. The server pings every `--ws-ping-interval-secs`
//! and closes a socket that sends nothing (pongs included) for `--ws-idle-timeout-secs`, or that
//! has no request in flight and sends no request for as long. On SIGTERM a socket takes no new
//! requests (they get a `shutting_down` error), lets those in flight finish, then closes; `serve`
//! waits for that within the shutdown grace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bounds::RequestPermit;
use super::chat::{admit_and_submit, subject_of, usage_of, Admitted};
use super::reasoning::{ReplySplitter, Split};
use super::wait::{next_event, Clock, Next};
use super::{ApiError, AppState};
use deepseek_engine::engine::Event;
use deepseek_http::Principal;
use deepseek_protocol::ws::{ClientFrame, ServerFrame};
use deepseek_protocol::ErrorDetail;

pub async fn ws_chat(
    State(st): State<Arc<AppState>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Browsers send no preflight for WebSockets: a cross-site page is stopped here or not at all.
    if let Err(origin) = st.origins.check(&headers) {
        return super::chat::error_response(&st, ApiError::OriginNotAllowed(origin));
    }
    upgrade
        .max_message_size(st.max_body_bytes)
        .on_upgrade(move |socket| {
            // Whose conversations these are, for the conversation store.
            let subject = subject_of(&st, principal, &headers);
            connection(st, socket, subject)
        })
}

/// Frames waiting for the socket. Bounded: a client that pipelines requests without reading
/// replies stops being read (TCP backpressure) instead of growing the server's memory.
const OUTBOX: usize = 256;

type Out = mpsc::Sender<Message>;

/// How often a draining socket checks whether its last request finished.
const DRAIN_TICK: Duration = Duration::from_millis(50);

async fn connection(st: Arc<AppState>, socket: WebSocket, subject: Option<String>) {
    let _open = st.live.ws_opened();
    let (mut sink, mut incoming) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(OUTBOX);
    let writer = tokio::spawn(async move {
        // Everything already queued goes out in one flush (one write), not one write a frame:
        // a client pipelining thousands of requests costs far fewer syscalls.
        'write: while let Some(msg) = out_rx.recv().await {
            if sink.feed(msg).await.is_err() {
                break;
            }
            while let Ok(more) = out_rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    break 'write;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut shutdown = st.live.shutdown_watch();
    let mut draining = *shutdown.borrow();
    let mut ping = tokio::time::interval(st.bounds.ws_ping_interval);
    ping.tick().await; // the first tick is immediate
    let mut last_frame = Instant::now();
    let mut last_request = Instant::now();
    loop {
        tasks.retain(|_, t| !t.is_finished());
        if draining && tasks.is_empty() {
            break;
        }
        if !tasks.is_empty() {
            // A socket waiting for its replies is not idle.
            last_request = Instant::now();
        }
        let idle = st.bounds.ws_idle_timeout;
        if last_frame.elapsed() >= idle || (tasks.is_empty() && last_request.elapsed() >= idle) {
            tracing::debug!("closing an idle WebSocket");
            break;
        }
        let tick = if draining {
            DRAIN_TICK
        } else {
            idle.min(st.bounds.ws_ping_interval)
        };
        tokio::select! {
            msg = incoming.next() => {
                let Some(Ok(msg)) = msg else { break };
                last_frame = Instant::now();
                match msg {
                    Message::Text(text) => {
                        last_request = Instant::now();
                        on_frame(&st, &out, &mut tasks, text.as_str(), draining, &subject).await;
                    }
                    Message::Binary(_) => {
                        let e = ApiError::InvalidJson("binary frames are not supported".into());
                        send_error(&st, &out, None, e).await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if out.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            changed = shutdown.changed(), if !draining => {
                draining = changed.is_err() || *shutdown.borrow();
            }
            _ = tokio::time::sleep(tick) => {}
        }
    }
    // Aborting drops each task's engine receiver: their sequences are freed at the next step.
    for (_, t) in tasks.drain() {
        t.abort();
    }
    drop(out);
    let _ = writer.await;
}

async fn on_frame(
    st: &Arc<AppState>,
    out: &Out,
    tasks: &mut HashMap<String, JoinHandle<()>>,
    text: &str,
    draining: bool,
    subject: &Option<String>,
) {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return send_error(st, out, None, ApiError::InvalidJson(e.to_string())).await,
    };
    match frame.kind.as_deref() {
        Some("cancel") => {
            let Some(id) = frame.id else {
                let e = ApiError::InvalidJson("a cancel frame needs the string `id`".into());
                return send_error(st, out, None, e).await;
            };
            if let Some(t) = tasks.remove(&id) {
                t.abort();
                let _ = out
                    .send(frame_message(&ServerFrame::Cancelled { id }))
                    .await;
            }
        }
        None | Some("chat") => {
            // An OpenAI-style body without an id is served under an id the server assigns.
            let id = frame
                .id
                .clone()
                .unwrap_or_else(|| format!("ws-{}", uuid::Uuid::new_v4().simple()));
            if tasks.contains_key(&id) {
                let e = ApiError::InvalidJson(format!("request id '{id}' is already in flight"));
                return send_error(st, out, Some(id), e).await;
            }
            if draining {
                return send_error(st, out, Some(id), ApiError::ShuttingDown).await;
            }
            if tasks.len() >= st.bounds.ws_max_in_flight {
                let limit = st.bounds.ws_max_in_flight;
                return send_error(st, out, Some(id), ApiError::TooManyInFlight { limit }).await;
            }
            let started = Instant::now();
            let permit = match st.live.try_permit() {
                Ok(p) => p,
                Err(e) => return send_error(st, out, Some(id), e).await,
            };
            match admit_and_submit(st, frame.request, true).await {
                Ok(admitted) => {
                    let task = tokio::spawn(forward_events(
                        st.clone(),
                        out.clone(),
                        id.clone(),
                        admitted,
                        started,
                        permit,
                        subject.clone(),
                    ));
                    tasks.insert(id, task);
                }
                Err(e) => send_error(st, out, Some(id), e).await,
            }
        }
        Some(other) => {
            let e = ApiError::InvalidJson(format!("unknown frame type '{other}'"));
            send_error(st, out, frame.id, e).await;
        }
    }
}

async fn forward_events(
    st: Arc<AppState>,
    out: Out,
    id: String,
    admitted: Admitted,
    started: Instant,
    _permit: RequestPermit,
    subject: Option<String>,
) {
    let Admitted {
        mut rx,
        remember,
        record,
        ..
    } = admitted;
    let mut clock = Clock::new(&st, started);
    let mut splitter = ReplySplitter::new(st.prompt.reasoning());
    let mut raw = String::new();
    loop {
        let ev = match next_event(&st, &mut rx, &mut clock, None).await {
            Ok(Next::Event(ev)) => ev,
            Ok(Next::Idle) => continue,
            Err(e) => return send_error(&st, &out, Some(id), e).await,
        };
        let frame = match ev {
            Event::Text(text) => {
                if remember.is_some() || record.is_some() {
                    raw.push_str(&text);
                }
                match delta_frame(&id, splitter.push(text)) {
                    Some(frame) => frame,
                    None => continue,
                }
            }
            Event::Finished { reason, usage } => {
                if let Some(messages) = &record {
                    let model = &st.limits.served_model_name;
                    st.privacy.record(subject.as_deref(), model, messages, &raw);
                }
                if let Some(frame) = delta_frame(&id, splitter.finish()) {
                    let _ = out.send(frame_message(&frame)).await;
                }
                st.metrics
                    .request_duration
                    .observe(started.elapsed().as_secs_f64());
                if let Some(key) = remember {
                    let answer = super::degrade::CachedAnswer {
                        // Kept for minutes and replayed to others: no personal data in it.
                        content: st.privacy.redact(&raw),
                        finish_reason: reason,
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                    };
                    st.degrade.remember(key, answer);
                }
                let done = ServerFrame::Done {
                    id,
                    finish_reason: reason.as_str().to_string(),
                    usage: usage_of(usage),
                };
                let _ = out.send(frame_message(&done)).await;
                return;
            }
            Event::Failed(e) => {
                return send_error(&st, &out, Some(id), ApiError::internal(e)).await
            }
        };
        if out.send(frame_message(&frame)).await.is_err() {
            return;
        }
    }
}

/// A delta frame for the decided text (reasoning apart), or none when nothing was decided.
fn delta_frame(id: &str, split: Split) -> Option<ServerFrame> {
    (!split.is_empty()).then(|| ServerFrame::Delta {
        id: id.to_string(),
        content: split.content,
        reasoning_content: (!split.reasoning.is_empty()).then_some(split.reasoning),
    })
}

fn frame_message(frame: &ServerFrame) -> Message {
    Message::Text(serde_json::to_string(frame).unwrap_or_default().into())
}

async fn send_error(st: &AppState, out: &Out, id: Option<String>, e: ApiError) {
    st.metrics.errors.with_label_values(&[e.code()]).inc();
    let error: ErrorDetail = e.detail();
    let _ = out
        .send(frame_message(&ServerFrame::Error { id, error }))
        .await;
}
