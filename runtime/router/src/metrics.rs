//! Every router metric name, label and bucket as a constant, on the router's own `Registry`
//! (no globals). Names and bounds are part of the README's Router section: the operator's canary
//! analysis reads them.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub const LABEL_REVISION: &str = "revision";
pub const LABEL_CODE_CLASS: &str = "code_class";
pub const LABEL_CLASS: &str = "class";
pub const LABEL_RESULT: &str = "result";

pub const REQUESTS: &str = "dsr_router_requests_total";
pub const ERRORS: &str = "dsr_router_errors_total";
pub const REQUEST_DURATION: &str = "dsr_router_request_duration_seconds";
pub const ROUTE_WEIGHT: &str = "dsr_router_route_weight";
pub const CONFIG_RELOADS: &str = "dsr_router_config_reloads_total";
/// Streams that failed after their 200 went out (the backend broke off, or sent an in-band
/// error frame); each is also counted in `dsr_router_errors_total{class="upstream_5xx"}`.
pub const MIDSTREAM_FAILURES: &str = "dsr_router_midstream_failures_total";
pub const EJECTIONS: &str = "dsr_router_backend_ejections_total";
pub const IN_FLIGHT: &str = "dsr_router_in_flight_requests";
pub const BODY_BUFFER_BYTES: &str = "dsr_router_body_buffer_bytes";
pub const REFUSED: &str = "dsr_router_refused_requests_total";
pub const LABEL_BACKEND: &str = "backend";
pub const LABEL_REASON: &str = "reason";

/// Seconds, whole request (a streamed generation ends when its last chunk is forwarded).
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// All router metrics; cheap to clone (prometheus handles are `Arc`s inside).
#[derive(Clone)]
pub struct RouterMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub weight: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub midstream: IntCounterVec,
    pub ejections: IntCounterVec,
    pub in_flight: IntGauge,
    pub body_buffer: IntGauge,
    /// Requests the router itself turned away, by `reason` (`concurrency`, `body_budget`,
    /// `no_routes`).
    pub refused: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: T,
) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl RouterMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let requests = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    REQUESTS,
                    "Completed proxied requests by revision and status class",
                ),
                &[LABEL_REVISION, LABEL_CODE_CLASS],
            )?,
        )?;
        let errors = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    ERRORS,
                    "Failed proxied requests by revision and error class",
                ),
                &[LABEL_REVISION, LABEL_CLASS],
            )?,
        )?;
        let duration = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(REQUEST_DURATION, "Whole-request latency through the router")
                    .buckets(LATENCY_BOUNDS.to_vec()),
                &[LABEL_REVISION],
            )?,
        )?;
        let weight = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    ROUTE_WEIGHT,
                    "Current traffic weight (percent) per revision",
                ),
                &[LABEL_REVISION],
            )?,
        )?;
        let reloads = register(
            &r,
            IntCounterVec::new(
                Opts::new(CONFIG_RELOADS, "Route file reloads by result (ok | error)"),
                &[LABEL_RESULT],
            )?,
        )?;
        let midstream = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    MIDSTREAM_FAILURES,
                    "Streams that failed after the response started, by revision",
                ),
                &[LABEL_REVISION],
            )?,
        )?;
        let ejections = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    EJECTIONS,
                    "Backends taken out of rotation after consecutive failures",
                ),
                &[LABEL_REVISION, LABEL_BACKEND],
            )?,
        )?;
        let in_flight = register(
            &r,
            IntGauge::new(
                IN_FLIGHT,
                "Proxied requests in flight (admitted, not finished)",
            )?,
        )?;
        let body_buffer = register(
            &r,
            IntGauge::new(
                BODY_BUFFER_BYTES,
                "Bytes of request bodies buffered for retries right now",
            )?,
        )?;
        let refused = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    REFUSED,
                    "Requests the router refused before proxying, by reason",
                ),
                &[LABEL_REASON],
            )?,
        )?;
        Ok(Self {
            midstream,
            ejections,
            in_flight,
            body_buffer,
            refused,
            registry: r,
            requests,
            errors,
            duration,
            weight,
            reloads,
        })
    }

    /// The registry `render` reads, for other layers' series (auth, rate limits, connection
    /// limits) to join.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
