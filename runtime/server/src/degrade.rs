//! Degradation under overload. When more requests wait than `queue_threshold`, a request whose
//! normalised conversation was answered recently gets that answer again (marked with the
//! `x-dsr-degraded: cached` header and counted), and every other request is shed at once with a
//! 429 and Retry-After, before it can join a queue it would only time out in. Streaming requests
//! are shed rather than served from the cache unless `streaming` is on: a streamed reply that
//! arrives in one piece surprises clients that render tokens as they come.
//!
//! The cache holds complete answers only (`finish_reason: stop`; a `length` answer is a
//! truncation that a request with another `max_tokens` must not get), keyed by a SHA-256 of the
//! request exactly as sent, minus the fields that only shape the reply (`stream`,
//! `stream_options`, `user`): the conversation byte for byte (indentation in code matters) and
//! every parameter that changes the output (model, temperature, top_p, top_k, seed, penalties,
//! `max_tokens`, `stop`, `ignore_eos`, ...), so a replay always honours `max_tokens` and `stop`.
//! The key is computed before the template is rendered, so admission costs no tokenisation.
//! Bounded by entries and by age.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use deepseek_engine::engine::FinishReason;
use deepseek_protocol::ChatCompletionRequest;

/// Response header on answers served from the cache.
pub const DEGRADED_HEADER: &str = "x-dsr-degraded";
/// Its value.
pub const DEGRADED_CACHED: &str = "cached";

/// Degradation settings (`serve --degrade-*` flags).
#[derive(Debug, Clone)]
pub struct DegradeConfig {
    /// Waiting requests at or above which the server degrades; `usize::MAX` never degrades.
    pub queue_threshold: usize,
    /// Most answers remembered; 0 disables the cache (overload then only sheds).
    pub cache_entries: usize,
    /// How long an answer stays usable.
    pub ttl: Duration,
    /// Serve cached answers to streaming requests too.
    pub streaming: bool,
}

impl Default for DegradeConfig {
    fn default() -> Self {
        Self {
            queue_threshold: usize::MAX,
            cache_entries: 1024,
            ttl: Duration::from_secs(600),
            streaming: false,
        }
    }
}

/// A remembered answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub content: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// What to do with a request given the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Not overloaded: generate as usual.
    Generate,
    /// Overloaded, and this conversation was answered recently.
    Cached(CachedAnswer),
    /// Overloaded and nothing to reuse: 429 with Retry-After.
    Shed { waiting: usize },
}

/// The normalised identity of a conversation (SHA-256, so no prompt text is kept in memory).
pub type PromptKey = [u8; 32];

/// The request as sent, minus what only shapes the reply. Serialising the parsed request gives
/// one canonical spelling of every field (JSON key order and spacing of the body do not matter,
/// the text of every message does, exactly).
pub fn request_key(req: &ChatCompletionRequest) -> PromptKey {
    let mut value = serde_json::to_value(req).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        for reply_only in ["stream", "stream_options", "user"] {
            fields.remove(reply_only);
        }
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&value).unwrap_or_default());
    h.finalize().into()
}

struct Entry {
    answer: CachedAnswer,
    stored: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PromptKey, Entry>,
    /// Insertion order for eviction; a key re-stored later appears again (stale positions are
    /// skipped by comparing the stored time).
    order: VecDeque<(PromptKey, Instant)>,
}

/// Overload policy plus the answer cache.
pub struct Degradation {
    config: DegradeConfig,
    inner: Mutex<Inner>,
}

impl Degradation {
    pub fn new(config: DegradeConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn config(&self) -> &DegradeConfig {
        &self.config
    }

    /// Decides for one request; `waiting` is the engine's queue length right now.
    pub fn admit(&self, waiting: usize, key: &PromptKey, stream: bool) -> Admission {
        if waiting < self.config.queue_threshold {
            return Admission::Generate;
        }
        if stream && !self.config.streaming {
            return Admission::Shed { waiting };
        }
        match self.lookup(key, Instant::now()) {
            Some(answer) => Admission::Cached(answer),
            None => Admission::Shed { waiting },
        }
    }

    /// Remembers a complete answer (a no-op when the cache is disabled or the answer was cut
    /// by `max_tokens` or the context).
    pub fn remember(&self, key: PromptKey, answer: CachedAnswer) {
        self.remember_at(key, answer, Instant::now());
    }

    fn remember_at(&self, key: PromptKey, answer: CachedAnswer, now: Instant) {
        if self.config.cache_entries == 0 || answer.finish_reason != FinishReason::Stop {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return; // a poisoned cache only loses the optimisation
        };
        inner.entries.insert(
            key,
            Entry {
                answer,
                stored: now,
            },
        );
        inner.order.push_back((key, now));
        while inner.entries.len() > self.config.cache_entries {
            let Some((old, at)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&old).is_some_and(|e| e.stored == at) {
                inner.entries.remove(&old);
            }
        }
        // Positions left behind by re-stored keys must not grow the queue without bound.
        if inner.order.len() > 2 * self.config.cache_entries.max(1) {
            let entries = &inner.entries;
            let kept: VecDeque<_> = inner
                .order
                .iter()
                .filter(|(k, at)| entries.get(k).is_some_and(|e| e.stored == *at))
                .copied()
                .collect();
            inner.order = kept;
        }
    }

    fn lookup(&self, key: &PromptKey, now: Instant) -> Option<CachedAnswer> {
        let inner = self.inner.lock().ok()?;
        let entry = inner.entries.get(key)?;
        (now.duration_since(entry.stored) <= self.config.ttl).then(|| entry.answer.clone())
    }

    /// Answers currently remembered (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn key_of(content: &str) -> PromptKey {
        request_key(&parse(
            json!({"model": "m", "messages": [{"role": "user", "content": content}]}),
        ))
    }

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer {
            content: text.into(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 2,
            completion_tokens: 3,
        }
    }

    fn overloaded_at(threshold: usize) -> Degradation {
        Degradation::new(DegradeConfig {
            queue_threshold: threshold,
            ..DegradeConfig::default()
        })
    }

    #[test]
    fn the_key_is_the_exact_conversation() {
        // Before: case and whitespace were normalised away, so Python differing only in
        // indentation shared an answer.
        let a = key_of("def f():\n    return 1");
        assert_ne!(a, key_of("def f():\n  return 1"));
        assert_ne!(a, key_of("DEF F():\n    RETURN 1"));
        assert_eq!(a, key_of("def f():\n    return 1"));
        let split = request_key(&parse(json!({"model": "m", "messages": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})));
        assert_ne!(split, key_of("a b"));
        let system = request_key(&parse(
            json!({"model": "m", "messages": [{"role": "system", "content": "a b"}]}),
        ));
        assert_ne!(system, key_of("a b"));
    }

    #[test]
    fn every_parameter_that_changes_the_output_changes_the_key() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let k = request_key(&parse(base.clone()));
        for (field, value) in [
            ("model", json!("other")),
            ("temperature", json!(0.5)),
            ("top_p", json!(0.9)),
            ("top_k", json!(5)),
            ("seed", json!(7)),
            ("max_tokens", json!(5)),
            ("max_completion_tokens", json!(5)),
            ("stop", json!(["x"])),
            ("ignore_eos", json!(true)),
            ("presence_penalty", json!(0.1)),
            ("frequency_penalty", json!(0.1)),
            ("repetition_penalty", json!(1.1)),
        ] {
            let mut v = base.clone();
            v[field] = value;
            assert_ne!(request_key(&parse(v)), k, "{field}");
        }
        let mut reply_only = base.clone();
        reply_only["stream"] = json!(true);
        reply_only["user"] = json!("u1");
        assert_eq!(request_key(&parse(reply_only)), k);
    }

    #[test]
    fn answers_cut_by_max_tokens_are_not_remembered() {
        let d = overloaded_at(0);
        let key = key_of("hi");
        d.remember(
            key,
            CachedAnswer {
                finish_reason: FinishReason::Length,
                ..answer("truncat")
            },
        );
        assert!(d.is_empty());
    }

    #[test]
    fn below_the_threshold_every_request_generates() {
        let d = overloaded_at(4);
        let key = key_of("hi");
        d.remember(key, answer("hello"));
        assert_eq!(d.admit(3, &key, false), Admission::Generate);
    }

    #[test]
    fn an_overloaded_server_answers_a_known_prompt_from_the_cache() {
        let d = overloaded_at(4);
        let key = key_of("hi");
        d.remember(key, answer("hello"));
        assert_eq!(d.admit(4, &key, false), Admission::Cached(answer("hello")));
    }

    #[test]
    fn an_overloaded_server_sheds_an_unknown_prompt() {
        let d = overloaded_at(4);
        let key = key_of("new");
        assert_eq!(d.admit(9, &key, false), Admission::Shed { waiting: 9 });
    }

    #[test]
    fn streaming_requests_are_shed_unless_streaming_is_enabled() {
        let key = key_of("hi");
        let off = overloaded_at(1);
        off.remember(key, answer("hello"));
        assert_eq!(off.admit(1, &key, true), Admission::Shed { waiting: 1 });
        let on = Degradation::new(DegradeConfig {
            queue_threshold: 1,
            streaming: true,
            ..DegradeConfig::default()
        });
        on.remember(key, answer("hello"));
        assert_eq!(on.admit(1, &key, true), Admission::Cached(answer("hello")));
    }

    #[test]
    fn answers_older_than_the_ttl_are_not_served() {
        let d = Degradation::new(DegradeConfig {
            queue_threshold: 0,
            ttl: Duration::from_secs(10),
            ..DegradeConfig::default()
        });
        let key = key_of("hi");
        let now = Instant::now();
        d.remember_at(key, answer("hello"), now);
        assert!(d.lookup(&key, now + Duration::from_secs(10)).is_some());
        assert!(d.lookup(&key, now + Duration::from_secs(11)).is_none());
    }

    #[test]
    fn the_cache_evicts_the_oldest_answer_beyond_its_size() {
        let d = Degradation::new(DegradeConfig {
            queue_threshold: 0,
            cache_entries: 2,
            ..DegradeConfig::default()
        });
        let keys: Vec<_> = (0..3).map(|i| key_of(&format!("q{i}"))).collect();
        for k in &keys {
            d.remember(*k, answer("a"));
        }
        assert_eq!(d.len(), 2);
        assert_eq!(d.admit(0, &keys[0], false), Admission::Shed { waiting: 0 });
        assert!(matches!(d.admit(0, &keys[2], false), Admission::Cached(_)));
    }

    #[test]
    fn re_storing_a_key_many_times_keeps_the_bookkeeping_bounded() {
        let d = Degradation::new(DegradeConfig {
            cache_entries: 4,
            ..DegradeConfig::default()
        });
        let key = key_of("same");
        for _ in 0..1000 {
            d.remember(key, answer("a"));
        }
        assert_eq!(d.len(), 1);
        let bookkeeping = d.inner.lock().map(|i| i.order.len()).unwrap_or(usize::MAX);
        assert!(bookkeeping <= 8);
    }

    #[test]
    fn a_zero_sized_cache_remembers_nothing() {
        let d = Degradation::new(DegradeConfig {
            cache_entries: 0,
            ..DegradeConfig::default()
        });
        d.remember(key_of(""), answer("a"));
        assert!(d.is_empty());
    }
}
