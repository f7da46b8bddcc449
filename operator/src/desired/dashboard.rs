//! The Grafana dashboard of one deployment, as a ConfigMap labelled `grafana_dashboard: "1"` (the
//! label the Grafana sidecar of kube-prometheus-stack loads dashboards from). Panels: request
//! rate, p50/p99 latency, error ratio, queue and batch, KV cache, tokens per second, and the GPU
//! panels from the DCGM exporter — the same series and selectors as the alerts.

use std::collections::BTreeMap;

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::prometheus_rule::{monitoring_labels, DEPLOYMENT_LABEL, RATE_WINDOW};
use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// Label the Grafana dashboard sidecar watches for.
pub const GRAFANA_LABEL: &str = "grafana_dashboard";

fn panel(id: u32, title: &str, unit: &str, targets: &[(&str, String)]) -> Value {
    let (x, y) = ((id - 1) % 2 * 12, (id - 1) / 2 * 8);
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": { "type": "prometheus", "uid": "${datasource}" },
        "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
        "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
        "targets": targets.iter().enumerate().map(|(i, (legend, expr))| json!({
            "refId": char::from(b'A' + i as u8).to_string(),
            "expr": expr,
            "legendFormat": legend,
        })).collect::<Vec<_>>(),
    })
}

/// Grafana uids hold at most 40 characters: a hash of namespace and name.
fn uid(namespace: &str, name: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{namespace}/{name}").as_bytes()));
    format!("deepseek-{}", &digest[..16])
}

/// The dashboard JSON model.
pub fn dashboard(namespace: &str, name: &str) -> Value {
    let sel = format!(r#"namespace="{namespace}",{DEPLOYMENT_LABEL}="{name}""#);
    let pods = format!(
        r#"namespace="{namespace}",pod=~"{}-[0-9a-f]{{10}}-.+""#,
        name.replace('.', "[.]")
    );
    let w = RATE_WINDOW;
    let by = "revision";
    let quantile = |q: &str| {
        format!("histogram_quantile({q}, sum by ({by}, le) (rate(dsr_request_duration_seconds_bucket{{{sel}}}[{w}])))")
    };
    let panels = vec![
        panel(1, "Requests per second", "reqps", &[
            ("{{revision}} {{finish_reason}}", format!("sum by ({by}, finish_reason) (rate(dsr_requests_total{{{sel}}}[{w}]))")),
            ("{{revision}} errors {{type}}", format!("sum by ({by}, type) (rate(dsr_errors_total{{{sel}}}[{w}]))")),
        ]),
        panel(2, "Request latency", "s", &[
            ("p50 {{revision}}", quantile("0.5")),
            ("p99 {{revision}}", quantile("0.99")),
        ]),
        panel(3, "Time to first token", "s", &[(
            "p99 {{revision}}",
            format!("histogram_quantile(0.99, sum by ({by}, le) (rate(dsr_time_to_first_token_seconds_bucket{{{sel}}}[{w}])))"),
        )]),
        panel(4, "Queue and batch", "short", &[
            ("waiting {{pod}}", format!("dsr_waiting_sequences{{{sel}}}")),
            ("running {{pod}}", format!("dsr_running_sequences{{{sel}}}")),
        ]),
        panel(5, "KV cache usage", "percentunit", &[("{{pod}}", format!("dsr_kv_cache_usage_ratio{{{sel}}}"))]),
        panel(6, "Generated tokens per second", "short", &[(
            "{{revision}}",
            format!("sum by ({by}) (rate(dsr_generation_tokens_total{{{sel}}}[{w}]))"),
        )]),
        panel(7, "GPU utilisation", "percent", &[("{{pod}} gpu {{gpu}}", format!("DCGM_FI_DEV_GPU_UTIL{{{pods}}}"))]),
        panel(8, "GPU framebuffer free", "decmbytes", &[("{{pod}} gpu {{gpu}}", format!("DCGM_FI_DEV_FB_FREE{{{pods}}}"))]),
        panel(9, "GPU temperature", "celsius", &[("{{pod}} gpu {{gpu}}", format!("DCGM_FI_DEV_GPU_TEMP{{{pods}}}"))]),
    ];
    json!({
        "title": format!("DeepSeek {namespace}/{name}"),
        "uid": uid(namespace, name),
        "tags": ["deepseek"],
        "schemaVersion": 39,
        "time": { "from": "now-3h", "to": "now" },
        "refresh": "30s",
        "templating": { "list": [{
            "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
        }] },
        "panels": panels,
    })
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
) -> Result<DesiredChild, BuildError> {
    let name = naming::monitoring_name(&owner.name);
    let mut labels = monitoring_labels(&owner.name, &spec.monitoring);
    labels.insert(GRAFANA_LABEL.to_string(), "1".to_string());
    let body = serde_json::to_string_pretty(&dashboard(&owner.namespace, &owner.name)).map_err(
        |source| BuildError::Serialize {
            kind: "ConfigMap",
            name: name.clone(),
            source,
        },
    )?;
    let cm = ConfigMap {
        metadata: owner.child_meta(name.clone(), labels),
        data: Some(BTreeMap::from([(format!("{name}.json"), body)])),
        ..ConfigMap::default()
    };
    owner.child(ChildKind::ConfigMap, &name, &cm)
}
