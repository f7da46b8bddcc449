//! Every router metric name, label and bucket as a constant, on the router's own `Registry`
//! (no globals). Names and bounds are part of the README's Router section: the operator's canary
//! analysis reads them.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
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
        Ok(Self {
            registry: r,
            requests,
            errors,
            duration,
            weight,
            reloads,
        })
    }

    /// The registry `render` reads, for other layers' series (auth, rate limits) to join.
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
