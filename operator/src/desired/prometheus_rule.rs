//! The PrometheusRule (monitoring.coreos.com/v1) of one DeepSeekDeployment: GPU alerts from the
//! DCGM exporter, node memory from the node exporter, pod readiness from kube-state-metrics, and
//! SLO alerts (p99 latency, error ratio, queue growth) from the runtime's own `dsr_*` metrics.
//! Thresholds come from `spec.monitoring`; every alert carries the deployment's namespace, name
//! (`deepseek_deployment`) and revision, a severity, a summary, a description and a
//! `runbook_url` into the README's "Alerts and runbook".
//!
//! Series of external exporters are tied to the deployment by pod name (`NAME-REVISION-…`, the
//! Deployment naming of [`super::naming`]); runtime series by the `deepseek_deployment` label the
//! PodMonitor ([`super::pod_monitor`]) adds.

use deepseek_crds::{DeepSeekDeploymentSpec, MonitoringSpec};
use serde_json::{json, Value};

use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// Label carrying the DeepSeekDeployment's name on runtime series (added by the PodMonitor) and
/// on every alert.
pub const DEPLOYMENT_LABEL: &str = "deepseek_deployment";
/// Runtime error types (`dsr_errors_total{type}`, runtime/server/src/error.rs `ApiError::code`) that
/// are the service's fault. Client mistakes (validation, bad JSON) are not; `engine` is left out
/// because the same failure is also counted as `generation_failed`.
pub const SERVER_ERROR_TYPES: &str = "queue_full|not_ready|engine_stopped|generation_failed";
/// Window of the rate() and deriv() of the SLO alerts.
pub const RATE_WINDOW: &str = "5m";
/// Pods may take many minutes to load a model: readiness alerts wait this long.
pub const NOT_READY_FOR: &str = "15m";
/// Runbook base when `spec.monitoring.runbookBaseUrl` is absent.
pub const DEFAULT_RUNBOOK: &str = "README.md";

/// Alert names, also the README runbook headings (their lowercase form is the anchor).
pub mod alerts {
    pub const GPU_UTILIZATION_HIGH: &str = "DeepSeekGpuUtilizationHigh";
    pub const GPU_FRAMEBUFFER_LOW: &str = "DeepSeekGpuFramebufferLow";
    pub const GPU_XID_ERROR: &str = "DeepSeekGpuXidError";
    pub const GPU_TEMPERATURE_HIGH: &str = "DeepSeekGpuTemperatureHigh";
    pub const NODE_MEMORY_LOW: &str = "DeepSeekNodeMemoryLow";
    pub const LATENCY_P99_HIGH: &str = "DeepSeekRequestLatencyP99High";
    pub const ERROR_RATIO_HIGH: &str = "DeepSeekErrorRatioHigh";
    pub const QUEUE_GROWING: &str = "DeepSeekQueueGrowing";
    pub const PODS_NOT_READY: &str = "DeepSeekPodsNotReady";
    /// Every alert, in the order the rule lists them.
    pub const ALL: [&str; 9] = [
        GPU_UTILIZATION_HIGH,
        GPU_FRAMEBUFFER_LOW,
        GPU_XID_ERROR,
        GPU_TEMPERATURE_HIGH,
        NODE_MEMORY_LOW,
        LATENCY_P99_HIGH,
        ERROR_RATIO_HIGH,
        QUEUE_GROWING,
        PODS_NOT_READY,
    ];
}

/// One alerting rule before it becomes JSON.
struct Alert {
    name: &'static str,
    expr: String,
    for_: String,
    severity: &'static str,
    summary: String,
    description: String,
}

/// Selectors and label plumbing for one deployment.
struct Scope<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Scope<'_> {
    /// Regex-escaped name: DNS names may hold dots.
    fn name_re(&self) -> String {
        self.name.replace('.', "[.]")
    }

    /// Runtime pods: `NAME-REVISION-RSHASH-SUFFIX`.
    fn pod_re(&self) -> String {
        format!("{}-[0-9a-f]{{10}}-[a-z0-9]+-[a-z0-9]+", self.name_re())
    }

    /// Matchers of exporter series about the runtime pods.
    fn pods(&self) -> String {
        format!(r#"namespace="{}",pod=~"{}""#, self.namespace, self.pod_re())
    }

    /// Matchers of the runtime's own series.
    fn runtime(&self) -> String {
        format!(
            r#"namespace="{}",{DEPLOYMENT_LABEL}="{}""#,
            self.namespace, self.name
        )
    }

    /// Adds `revision` (the hash inside the pod name) to an expression with a `pod` label.
    fn with_revision(&self, expr: &str, from: &str) -> String {
        format!(
            r#"label_replace({expr}, "revision", "$1", "{from}", "{}-([0-9a-f]{{10}})(-.*)?")"#,
            self.name_re()
        )
    }
}

/// Labels the SLO aggregations keep.
const BY: &str = "namespace, deepseek_deployment, revision";

fn gpu_alerts(s: &Scope, m: &MonitoringSpec) -> Vec<Alert> {
    let pods = s.pods();
    let fb_gib = m.fb_free_bytes_threshold as f64 / f64::from(1 << 30);
    vec![
        Alert {
            name: alerts::GPU_UTILIZATION_HIGH,
            expr: format!(
                "{} > {}",
                s.with_revision(&format!("max by (namespace, pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{pods}}})"), "pod"),
                m.gpu_util_threshold
            ),
            for_: m.for_duration.clone(),
            severity: "warning",
            summary: "GPU saturated".into(),
            description: format!("GPU {{{{ $labels.gpu }}}} of pod {{{{ $labels.pod }}}} has been {{{{ $value }}}}% busy for {} (threshold {}%): requests queue behind it.", m.for_duration, m.gpu_util_threshold),
        },
        Alert {
            name: alerts::GPU_FRAMEBUFFER_LOW,
            // DCGM reports framebuffer memory in MiB.
            expr: format!(
                "{} * 1048576 < {}",
                s.with_revision(&format!("min by (namespace, pod, gpu) (DCGM_FI_DEV_FB_FREE{{{pods}}})"), "pod"),
                m.fb_free_bytes_threshold
            ),
            for_: m.for_duration.clone(),
            severity: "warning",
            summary: "GPU memory almost full".into(),
            description: format!("GPU {{{{ $labels.gpu }}}} of pod {{{{ $labels.pod }}}} has {{{{ $value | humanize1024 }}}}B of framebuffer free (threshold {fb_gib} GiB): the KV cache cannot grow."),
        },
        Alert {
            name: alerts::GPU_XID_ERROR,
            // The gauge holds the last XID code, 0 when none.
            expr: format!(
                "{} > 0",
                s.with_revision(&format!("max by (namespace, pod, gpu) (DCGM_FI_DEV_XID_ERRORS{{{pods}}})"), "pod")
            ),
            for_: "0m".into(),
            severity: "critical",
            summary: "GPU reported an XID error".into(),
            description: "GPU {{ $labels.gpu }} of pod {{ $labels.pod }} reported XID {{ $value }}: a driver or hardware fault; the pod's results may be wrong or it may hang.".into(),
        },
        Alert {
            name: alerts::GPU_TEMPERATURE_HIGH,
            expr: format!(
                "{} > {}",
                s.with_revision(&format!("max by (namespace, pod, gpu) (DCGM_FI_DEV_GPU_TEMP{{{pods}}})"), "pod"),
                m.gpu_temp_celsius_threshold
            ),
            for_: m.for_duration.clone(),
            severity: "warning",
            summary: "GPU running hot".into(),
            description: format!("GPU {{{{ $labels.gpu }}}} of pod {{{{ $labels.pod }}}} is at {{{{ $value }}}} °C (threshold {} °C): it will throttle.", m.gpu_temp_celsius_threshold),
        },
    ]
}

fn node_memory_alert(s: &Scope, m: &MonitoringSpec) -> Alert {
    // kube_pod_info maps pods to nodes; the node exporter's `instance` is the node name.
    let pods_on_nodes = format!(
        r#"max by (instance, namespace, pod) (label_replace(kube_pod_info{{{}}}, "instance", "$1", "node", "(.*)"))"#,
        s.pods()
    );
    let joined = format!(
        "{pods_on_nodes} * on (instance) group_left () max by (instance) (node_memory_MemAvailable_bytes)"
    );
    Alert {
        name: alerts::NODE_MEMORY_LOW,
        expr: format!(
            "{} < {}",
            s.with_revision(&joined, "pod"),
            m.node_memory_available_bytes_threshold
        ),
        for_: m.for_duration.clone(),
        severity: "warning",
        summary: "Node memory running out".into(),
        description: "Node {{ $labels.instance }} running pod {{ $labels.pod }} has {{ $value | humanize1024 }}B of memory available: the kernel may kill the runtime.".into(),
    }
}

fn slo_alerts(s: &Scope, m: &MonitoringSpec) -> Vec<Alert> {
    let sel = s.runtime();
    let w = RATE_WINDOW;
    let errors = format!("sum by ({BY}) (rate(dsr_errors_total{{{sel}}}[{w}]))");
    let finished = format!("sum by ({BY}) (rate(dsr_requests_total{{{sel}}}[{w}]))");
    let server_errors = format!(
        r#"sum by ({BY}) (rate(dsr_errors_total{{{sel},type=~"{SERVER_ERROR_TYPES}"}}[{w}]))"#
    );
    vec![
        Alert {
            name: alerts::LATENCY_P99_HIGH,
            expr: format!(
                "histogram_quantile(0.99, sum by ({BY}, le) (rate(dsr_request_duration_seconds_bucket{{{sel}}}[{w}]))) > {}",
                m.p99_latency_seconds
            ),
            for_: m.for_duration.clone(),
            severity: "warning",
            summary: "Chat request p99 latency above the SLO".into(),
            description: format!("p99 latency of revision {{{{ $labels.revision }}}} is {{{{ $value | humanizeDuration }}}} (threshold {} s).", m.p99_latency_seconds),
        },
        Alert {
            name: alerts::ERROR_RATIO_HIGH,
            // A revision that never finished a request has no dsr_requests_total series: count
            // it as zero so a 100% failure rate still fires.
            expr: format!(
                "{server_errors} / (({finished} or 0 * {errors}) + {errors}) > {}",
                m.error_ratio
            ),
            for_: m.for_duration.clone(),
            severity: "critical",
            summary: "Too many chat requests fail".into(),
            description: format!("{{{{ $value | humanizePercentage }}}} of requests to revision {{{{ $labels.revision }}}} fail with a server-side error (threshold {}).", m.error_ratio),
        },
        Alert {
            name: alerts::QUEUE_GROWING,
            expr: format!(
                "sum by ({BY}) (dsr_waiting_sequences{{{sel}}}) > {q} and sum by ({BY}) (deriv(dsr_waiting_sequences{{{sel}}}[{w}])) > 0",
                q = m.queue_depth_threshold
            ),
            for_: m.for_duration.clone(),
            severity: "warning",
            summary: "Request queue keeps growing".into(),
            description: format!("{{{{ $value }}}} requests of revision {{{{ $labels.revision }}}} wait for a batch slot and the queue is still growing (threshold {}): add replicas or GPUs.", m.queue_depth_threshold),
        },
    ]
}

fn readiness_alert(s: &Scope) -> Alert {
    let deployments = format!(
        r#"namespace="{}",deployment=~"{}-[0-9a-f]{{10}}""#,
        s.namespace,
        s.name_re()
    );
    let missing = format!(
        "(kube_deployment_spec_replicas{{{deployments}}} - kube_deployment_status_replicas_available{{{deployments}}})"
    );
    Alert {
        name: alerts::PODS_NOT_READY,
        expr: format!("{} > 0", s.with_revision(&missing, "deployment")),
        for_: NOT_READY_FOR.into(),
        severity: "warning",
        summary: "Runtime replicas not ready".into(),
        description: format!("{{{{ $value }}}} replicas of Deployment {{{{ $labels.deployment }}}} have not been available for {NOT_READY_FOR}: check pod events, the model fetch and GPU capacity."),
    }
}

/// Every alert of the deployment.
fn all_alerts(s: &Scope, m: &MonitoringSpec) -> Vec<Alert> {
    let mut out = gpu_alerts(s, m);
    out.push(node_memory_alert(s, m));
    out.extend(slo_alerts(s, m));
    out.push(readiness_alert(s));
    out
}

fn rule_json(alert: Alert, s: &Scope, runbook: &str) -> Value {
    json!({
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.for_,
        "labels": {
            "severity": alert.severity,
            "namespace": s.namespace,
            DEPLOYMENT_LABEL: s.name,
        },
        "annotations": {
            "summary": format!("{} ({}/{})", alert.summary, s.namespace, s.name),
            "description": alert.description,
            "runbook_url": format!("{runbook}#{}", alert.name.to_lowercase()),
        },
    })
}

/// The `spec.groups` of the rule: what `promtool check rules` reads.
pub fn groups(namespace: &str, name: &str, m: &MonitoringSpec) -> Value {
    let s = Scope { namespace, name };
    let runbook = m.runbook_base_url.as_deref().unwrap_or(DEFAULT_RUNBOOK);
    let rules: Vec<Value> = all_alerts(&s, m)
        .into_iter()
        .map(|a| rule_json(a, &s, runbook))
        .collect();
    json!([{ "name": format!("deepseek.{namespace}.{name}"), "rules": rules }])
}

/// Labels of every monitoring child: the common ones, `component: monitoring` (the controller
/// skips such children where the cluster has no monitoring CRDs) and the user's selector labels.
pub fn monitoring_labels(
    dsd_name: &str,
    m: &MonitoringSpec,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = m.labels.clone();
    labels.extend(naming::common_labels(dsd_name));
    labels.insert(
        naming::LABEL_COMPONENT.to_string(),
        naming::COMPONENT_MONITORING.to_string(),
    );
    labels
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
) -> Result<DesiredChild, BuildError> {
    let m = &spec.monitoring;
    let name = naming::monitoring_name(&owner.name);
    let meta = owner.child_meta(name.clone(), monitoring_labels(&owner.name, m));
    let rule = json!({
        "apiVersion": ChildKind::PrometheusRule.api_version(),
        "kind": ChildKind::PrometheusRule.kind(),
        "metadata": meta,
        "spec": { "groups": groups(&owner.namespace, &owner.name, m) },
    });
    owner.child(ChildKind::PrometheusRule, &name, &rule)
}
