//! Every metric name, label and bucket as a constant, registered on the server's own `Registry`
//! (no globals). `model` and `revision` are constant labels of the registry, so every series
//! carries them.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub const LABEL_MODEL: &str = "model";
pub const LABEL_REVISION: &str = "revision";
pub const LABEL_ERROR_TYPE: &str = "type";
pub const LABEL_FINISH_REASON: &str = "finish_reason";

pub const REQUEST_DURATION: &str = "dsr_request_duration_seconds";
pub const TIME_TO_FIRST_TOKEN: &str = "dsr_time_to_first_token_seconds";
pub const INTER_TOKEN_LATENCY: &str = "dsr_inter_token_latency_seconds";
pub const PROMPT_TOKENS: &str = "dsr_prompt_tokens_total";
pub const GENERATION_TOKENS: &str = "dsr_generation_tokens_total";
pub const REQUESTS: &str = "dsr_requests_total";
pub const RUNNING_SEQUENCES: &str = "dsr_running_sequences";
pub const WAITING_SEQUENCES: &str = "dsr_waiting_sequences";
pub const KV_CACHE_USED_TOKENS: &str = "dsr_kv_cache_used_tokens";
pub const KV_CACHE_USAGE: &str = "dsr_kv_cache_usage_ratio";
pub const ERRORS: &str = "dsr_errors_total";
pub const DECODE_BATCH_SIZE: &str = "dsr_decode_batch_size";
/// Requests handled by the overload policy, by `outcome` (`cached` or `shed`).
pub const SSE_KEEPALIVES: &str = "dsr_sse_keepalives_total";
pub const IN_FLIGHT_REQUESTS: &str = "dsr_in_flight_requests";
pub const WS_CONNECTIONS: &str = "dsr_websocket_connections";
pub const ENGINE_UP: &str = "dsr_engine_up";
pub const DEGRADED_RESPONSES: &str = "dsr_degraded_responses_total";
pub const LABEL_OUTCOME: &str = "outcome";

/// Seconds: from a few ms (one decode step on GPU) to minutes (long generations on CPU).
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
pub const TTFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
pub const ITL_BUCKETS: &[f64] = &[0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28];
/// Sequences decoded together in one forward pass.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// All runtime metrics; cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub request_duration: Histogram,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub prompt_tokens: IntCounter,
    pub generation_tokens: IntCounter,
    pub requests: IntCounterVec,
    pub running: IntGauge,
    pub waiting: IntGauge,
    pub kv_used_tokens: IntGauge,
    pub kv_usage: prometheus::Gauge,
    pub errors: IntCounterVec,
    pub decode_batch_size: Histogram,
    pub degraded: IntCounterVec,
    /// SSE keep-alive comments sent while a request waited.
    pub sse_keepalives: IntCounter,
    /// Chat requests holding a concurrency slot (set when scraped).
    pub in_flight_requests: IntGauge,
    /// Open WebSocket connections (set when scraped).
    pub ws_connections: IntGauge,
    /// 1 while the engine can serve (ready, not stopped, no step past the watchdog).
    pub engine_up: IntGauge,
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: T,
) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new(model: &str, revision: &str) -> prometheus::Result<Self> {
        let labels = [(LABEL_MODEL, model), (LABEL_REVISION, revision)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = Registry::new_custom(None, Some(labels))?;
        Ok(Self {
            request_duration: histogram(
                &r,
                REQUEST_DURATION,
                "Chat request duration.",
                DURATION_BUCKETS,
            )?,
            time_to_first_token: histogram(
                &r,
                TIME_TO_FIRST_TOKEN,
                "Arrival to first token.",
                TTFT_BUCKETS,
            )?,
            inter_token_latency: histogram(
                &r,
                INTER_TOKEN_LATENCY,
                "Time between tokens.",
                ITL_BUCKETS,
            )?,
            prompt_tokens: register(
                &r,
                IntCounter::new(PROMPT_TOKENS, "Prompt tokens processed.")?,
            )?,
            generation_tokens: register(
                &r,
                IntCounter::new(GENERATION_TOKENS, "Tokens generated.")?,
            )?,
            requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(REQUESTS, "Finished requests."),
                    &[LABEL_FINISH_REASON],
                )?,
            )?,
            running: register(
                &r,
                IntGauge::new(RUNNING_SEQUENCES, "Sequences in the running batch.")?,
            )?,
            waiting: register(
                &r,
                IntGauge::new(WAITING_SEQUENCES, "Sequences waiting to run.")?,
            )?,
            kv_used_tokens: register(
                &r,
                IntGauge::new(KV_CACHE_USED_TOKENS, "KV cache tokens held.")?,
            )?,
            kv_usage: register(
                &r,
                prometheus::Gauge::new(KV_CACHE_USAGE, "KV cache used / capacity.")?,
            )?,
            degraded: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        DEGRADED_RESPONSES,
                        "Requests answered from the cache or shed under overload.",
                    ),
                    &[LABEL_OUTCOME],
                )?,
            )?,
            errors: register(
                &r,
                IntCounterVec::new(
                    Opts::new(ERRORS, "Failed requests by error type."),
                    &[LABEL_ERROR_TYPE],
                )?,
            )?,
            decode_batch_size: histogram(
                &r,
                DECODE_BATCH_SIZE,
                "Sequences decoded together per forward pass.",
                BATCH_SIZE_BUCKETS,
            )?,
            sse_keepalives: register(
                &r,
                IntCounter::new(
                    SSE_KEEPALIVES,
                    "SSE keep-alive comments sent while requests waited.",
                )?,
            )?,
            in_flight_requests: register(
                &r,
                IntGauge::new(IN_FLIGHT_REQUESTS, "Chat requests in flight.")?,
            )?,
            ws_connections: register(
                &r,
                IntGauge::new(WS_CONNECTIONS, "Open WebSocket connections.")?,
            )?,
            engine_up: register(
                &r,
                IntGauge::new(
                    ENGINE_UP,
                    "1 while the engine can serve: warmed up, running, no step past the watchdog.",
                )?,
            )?,
            registry: r,
        })
    }

    /// The registry `render` reads, for other layers' series (auth, rate limits, connection
    /// limits) to join.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an empty page is the fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_model_and_revision_labels() {
        let m = Metrics::new("smol", "r1").unwrap();
        m.prompt_tokens.inc_by(3);
        m.errors.with_label_values(&["queue_full"]).inc();
        let text = m.render();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        for name in ["dsr_prompt_tokens_total", "dsr_errors_total"] {
            let l = line(name);
            assert!(
                l.contains(r#"model="smol""#) && l.contains(r#"revision="r1""#),
                "{text}"
            );
        }
        assert!(line("dsr_prompt_tokens_total").ends_with(" 3"));
        assert!(line("dsr_errors_total").contains(r#"type="queue_full""#));
    }
}
