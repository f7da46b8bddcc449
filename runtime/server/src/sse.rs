//! Streaming replies as Server-Sent Events, in OpenAI's order: a role chunk, content deltas
//! (`reasoning_content` apart for R1-style models, see `reasoning`), a
//! chunk with `finish_reason`, a usage chunk when `stream_options.include_usage`, then
//! `data: [DONE]`. Dropping the stream (client gone) drops the engine receiver, which frees the
//! sequence at the next step. While nothing happens (waiting in the queue, a long prefill) a
//! `: keep-alive` comment goes out every `--sse-keepalive-secs`, so proxies and clients with
//! read timeouts do not cut a request that is only waiting. A deadline or a dead engine ends the
//! stream with an error frame and `[DONE]`, never silently.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::{Event as SseEvent, Sse};
use futures::Stream;
use tokio::sync::mpsc;

use super::bounds::RequestPermit;
use super::chat::{completion_id, now_secs, usage_of, Admitted};
use super::degrade::{CachedAnswer, PromptKey};
use super::reasoning::{ReplySplitter, Split};
use super::wait::{next_event, Clock, Next};
use super::{ApiError, AppState};
use deepseek_engine::engine::Event;
use deepseek_protocol::validate::PromptMessage;
use deepseek_protocol::{ChatCompletionChunk, ChunkChoice, Delta, ErrorBody, Usage};

struct ChunkMaker {
    id: String,
    created: i64,
    model: String,
}

impl ChunkMaker {
    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            }],
            usage: None,
        }
    }

    fn usage_chunk(&self, usage: Usage) -> ChatCompletionChunk {
        ChatCompletionChunk {
            choices: Vec::new(),
            usage: Some(usage),
            ..self.chunk(Delta::default(), None)
        }
    }
}

fn data<T: serde::Serialize>(value: &T) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(value).unwrap_or_default())
}

struct StreamState {
    st: Arc<AppState>,
    rx: mpsc::UnboundedReceiver<Event>,
    maker: ChunkMaker,
    include_usage: bool,
    pending: VecDeque<SseEvent>,
    splitter: ReplySplitter,
    done: bool,
    started: Instant,
    clock: Clock,
    /// Where the finished answer is remembered for the overload policy (None for replays).
    remember: Option<PromptKey>,
    /// The conversation to record once answered, and whose it is (`privacy::Privacy::record`).
    record: Option<(Option<String>, Vec<PromptMessage>)>,
    text: String,
    /// The request's concurrency slot, freed when the stream ends or is dropped.
    _permit: RequestPermit,
}

impl StreamState {
    /// Turns one engine event into SSE frames.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Text(t) => {
                if self.remember.is_some() || self.record.is_some() {
                    self.text.push_str(&t);
                }
                let split = self.splitter.push(t);
                self.push_split(split);
            }
            Event::Finished { reason, usage } => {
                let split = self.splitter.finish();
                self.push_split(split);
                let last = self
                    .maker
                    .chunk(Delta::default(), Some(reason.as_str().into()));
                self.pending.push_back(data(&last));
                if self.include_usage {
                    self.pending
                        .push_back(data(&self.maker.usage_chunk(usage_of(usage))));
                }
                self.st
                    .metrics
                    .request_duration
                    .observe(self.started.elapsed().as_secs_f64());
                if let Some((subject, messages)) = self.record.take() {
                    let model = &self.st.limits.served_model_name;
                    let privacy = &self.st.privacy;
                    privacy.record(subject.as_deref(), model, &messages, &self.text);
                }
                if let Some(key) = self.remember.take() {
                    let answer = CachedAnswer {
                        // Kept for minutes and replayed to others: no personal data in it.
                        content: self.st.privacy.redact(&std::mem::take(&mut self.text)),
                        finish_reason: reason,
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                    };
                    self.st.degrade.remember(key, answer);
                }
                self.finish();
            }
            Event::Failed(e) => self.fail(ApiError::internal(e)),
        }
    }

    /// One delta chunk for the decided text, reasoning and content apart; nothing if empty.
    fn push_split(&mut self, split: Split) {
        if split.is_empty() {
            return;
        }
        let some = |s: String| (!s.is_empty()).then_some(s);
        let delta = Delta {
            role: None,
            content: some(split.content),
            reasoning_content: some(split.reasoning),
        };
        self.pending.push_back(data(&self.maker.chunk(delta, None)));
    }

    /// Headers are already sent, so a failure mid-stream becomes an error frame.
    fn fail(&mut self, e: ApiError) {
        self.st.metrics.errors.with_label_values(&[e.code()]).inc();
        self.pending
            .push_back(data(&ErrorBody { error: e.detail() }));
        self.finish();
    }

    fn finish(&mut self) {
        self.pending.push_back(SseEvent::default().data("[DONE]"));
        self.done = true;
    }
}

pub fn stream_reply(
    st: Arc<AppState>,
    admitted: Admitted,
    started: Instant,
    permit: RequestPermit,
    subject: Option<String>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let Admitted {
        rx,
        remember,
        include_usage,
        record,
        ..
    } = admitted;
    let record = record.map(|messages| (subject, messages));
    let maker = ChunkMaker {
        id: completion_id(),
        created: now_secs(),
        model: st.limits.served_model_name.clone(),
    };
    let role = Delta {
        role: Some("assistant".into()),
        content: Some(String::new()),
        reasoning_content: None,
    };
    let first = data(&maker.chunk(role, None));
    let splitter = ReplySplitter::new(st.prompt.reasoning());
    let clock = Clock::new(&st, started);
    let state = StreamState {
        st,
        rx,
        maker,
        include_usage,
        pending: VecDeque::from([first]),
        splitter,
        done: false,
        started,
        clock,
        remember,
        record,
        text: String::new(),
        _permit: permit,
    };
    Sse::new(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(ev), s));
            }
            if s.done {
                return None;
            }
            let keepalive = Some(s.st.bounds.sse_keepalive);
            match next_event(&s.st, &mut s.rx, &mut s.clock, keepalive).await {
                Ok(Next::Event(ev)) => s.on_event(ev),
                Ok(Next::Idle) => {
                    s.st.metrics.sse_keepalives.inc();
                    let comment = SseEvent::default().comment("keep-alive");
                    return Some((Ok(comment), s));
                }
                Err(e) => s.fail(e),
            }
        }
    }))
}
