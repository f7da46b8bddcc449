//! `GET /ws/chat`: chat over one WebSocket. Each text frame is a chat request (the HTTP body plus
//! an `id`) or `{"type":"cancel","id":..}`; replies are `delta`, then `done` or `error` frames
//! tagged with the request's id. Several requests may run at once; closing the socket cancels
//! them all. Protocol in README "WebSocket chat".

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chat::{subject_of, submit, usage_of, validate_blocking};
use super::reasoning::{ReplySplitter, Split};
use super::{ApiError, AppState};
use deepseek_engine::engine::Event;
use deepseek_http::Principal;
use deepseek_protocol::validate::PromptMessage;
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

type Out = mpsc::UnboundedSender<ServerFrame>;

async fn connection(st: Arc<AppState>, socket: WebSocket, subject: Option<String>) {
    let (mut sink, mut incoming) = socket.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<ServerFrame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            let text = serde_json::to_string(&frame).unwrap_or_default();
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Some(Ok(msg)) = incoming.next().await {
        tasks.retain(|_, t| !t.is_finished());
        match msg {
            Message::Text(text) => on_frame(&st, &out, &mut tasks, text.as_str(), &subject).await,
            Message::Binary(_) => send_error(
                &st,
                &out,
                None,
                ApiError::InvalidJson("binary frames are not supported".into()),
            ),
            Message::Close(_) => break,
            _ => {}
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
    subject: &Option<String>,
) {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return send_error(st, out, None, ApiError::InvalidJson(e.to_string())),
    };
    let Some(id) = frame.id.clone() else {
        return send_error(
            st,
            out,
            None,
            ApiError::InvalidJson("every frame needs a string `id`".into()),
        );
    };
    match frame.kind.as_deref() {
        Some("cancel") => {
            if let Some(t) = tasks.remove(&id) {
                t.abort();
                let _ = out.send(ServerFrame::Cancelled { id });
            }
        }
        None | Some("chat") => {
            if tasks.contains_key(&id) {
                let e = ApiError::InvalidJson(format!("request id '{id}' is already in flight"));
                return send_error(st, out, Some(id), e);
            }
            match start(st, frame).await {
                Ok((rx, messages)) => {
                    let record = (subject.clone(), messages);
                    let task = tokio::spawn(forward_events(
                        st.clone(),
                        out.clone(),
                        id.clone(),
                        rx,
                        record,
                    ));
                    tasks.insert(id, task);
                }
                Err(e) => send_error(st, out, Some(id), e),
            }
        }
        Some(other) => {
            let e = ApiError::InvalidJson(format!("unknown frame type '{other}'"));
            send_error(st, out, Some(id), e);
        }
    }
}

/// The engine's event stream for the request, and its messages (to record once answered).
async fn start(
    st: &Arc<AppState>,
    frame: ClientFrame,
) -> Result<(mpsc::UnboundedReceiver<Event>, Vec<PromptMessage>), ApiError> {
    let valid = validate_blocking(st, frame.request).await?;
    Ok((submit(st, &valid)?, valid.messages))
}

async fn forward_events(
    st: Arc<AppState>,
    out: Out,
    id: String,
    mut rx: mpsc::UnboundedReceiver<Event>,
    (subject, messages): (Option<String>, Vec<PromptMessage>),
) {
    let started = std::time::Instant::now();
    let mut splitter = ReplySplitter::new(st.prompt.reasoning());
    let mut answer = String::new();
    while let Some(ev) = rx.recv().await {
        let frame = match ev {
            Event::Text(text) => {
                answer.push_str(&text);
                match delta_frame(&id, splitter.push(text)) {
                    Some(frame) => frame,
                    None => continue,
                }
            }
            Event::Finished { reason, usage } => {
                let model = &st.limits.served_model_name;
                st.privacy
                    .record(subject.as_deref(), model, &messages, &answer);
                if let Some(frame) = delta_frame(&id, splitter.finish()) {
                    let _ = out.send(frame);
                }
                st.metrics
                    .request_duration
                    .observe(started.elapsed().as_secs_f64());
                let finish_reason = reason.as_str().to_string();
                let _ = out.send(ServerFrame::Done {
                    id,
                    finish_reason,
                    usage: usage_of(usage),
                });
                return;
            }
            Event::Failed(e) => return send_error(&st, &out, Some(id), ApiError::Generation(e)),
        };
        if out.send(frame).is_err() {
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

fn send_error(st: &AppState, out: &Out, id: Option<String>, e: ApiError) {
    st.metrics.errors.with_label_values(&[e.code()]).inc();
    let error: ErrorDetail = e.detail();
    let _ = out.send(ServerFrame::Error { id, error });
}
