//! The Helm chart through the real Helm v4 SDK (`charts/tests/helm_sdk.py`, PyPI
//! `helm-python-sdk`): lint, render, values-schema validation, plus checks that a rendered
//! document is a valid Kubernetes object (typed round trip through k8s-openapi).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::repo;

/// The chart directory, relative to the repository root.
pub const CHART: &str = "charts/deepseek-operator";
/// Release name and namespace the tests render with (what `manifests` uses by default).
pub const RELEASE: &str = "deepseek-operator";
pub const NAMESPACE: &str = "deepseek-system";

/// Runs the given Helm operations in one Python process; one result object per operation.
pub fn run(ops: Vec<Value>) -> anyhow::Result<Vec<Value>> {
    let request = json!({"chart": repo::path(CHART), "ops": ops});
    let mut child = Command::new(repo::python()?)
        .arg(repo::path("charts/tests/helm_sdk.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start python")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(request.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "helm_sdk.py failed (is helm-python-sdk installed? run `make test-deps`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Renders the chart with `values` into its Kubernetes documents (NOTES.txt and empty
/// templates left out), each tagged with the template it came from.
pub fn render(values: Value) -> anyhow::Result<Vec<(String, Value)>> {
    let result = run(vec![json!({"op": "render", "values": values,
        "name": RELEASE, "namespace": NAMESPACE})])?
    .remove(0);
    if result["ok"] != true {
        bail!("render failed: {}", result["error"]);
    }
    let mut docs = Vec::new();
    let files = result["files"].as_object().cloned().unwrap_or_default();
    for (template, text) in files {
        if template.ends_with("NOTES.txt") {
            continue;
        }
        let text = text.as_str().unwrap_or_default();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).with_context(|| format!("{template} is not YAML"))?;
            if !v.is_null() {
                docs.push((template.clone(), v));
            }
        }
    }
    Ok(docs)
}

/// Values from a YAML file of the checkout.
pub fn values_file(relative: &str) -> anyhow::Result<Value> {
    Ok(serde_yaml::from_str(&repo::read(relative)?)?)
}

/// Parses `doc` as `K` and back: a field Kubernetes does not know, a wrong type or a misplaced
/// key makes the round trip differ (or fail), so this is a schema check without a cluster.
fn round_trip<K: DeserializeOwned + Serialize>(doc: &Value) -> anyhow::Result<()> {
    let typed: K = serde_json::from_value(doc.clone())?;
    let back = serde_json::to_value(&typed)?;
    if &back != doc {
        bail!(
            "not a valid object of its kind: fields lost or changed in a typed round trip\n\
             rendered: {doc:#}\ntyped:    {back:#}"
        );
    }
    Ok(())
}

/// Checks one rendered document: a known kind whose typed round trip is lossless, a DNS-1123
/// name, a namespace exactly for namespaced kinds.
pub fn check_object(doc: &Value) -> anyhow::Result<()> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    if !is_dns_label_or_subdomain(name) {
        bail!("{kind} has an invalid name {name:?}");
    }
    let namespaced = !matches!(
        kind,
        "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition" | "Namespace"
    );
    if namespaced != doc["metadata"]["namespace"].is_string() {
        bail!("{kind} {name}: namespace must be set exactly for namespaced kinds");
    }
    match kind {
        "ServiceAccount" => round_trip::<ServiceAccount>(doc),
        "ClusterRole" => round_trip::<ClusterRole>(doc),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc),
        "Role" => round_trip::<Role>(doc),
        "RoleBinding" => round_trip::<RoleBinding>(doc),
        "Deployment" => round_trip::<Deployment>(doc),
        "Service" => round_trip::<Service>(doc),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(doc),
        "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(doc),
        "ServiceMonitor" => check_service_monitor(doc),
        other => bail!("unexpected kind {other} in the chart: teach helm::check_object about it"),
    }
    .with_context(|| format!("{kind} {name}"))
}

/// monitoring.coreos.com/v1 ServiceMonitor: the fields the Prometheus Operator requires.
fn check_service_monitor(doc: &Value) -> anyhow::Result<()> {
    if doc["apiVersion"] != "monitoring.coreos.com/v1" {
        bail!("apiVersion must be monitoring.coreos.com/v1");
    }
    let spec = &doc["spec"];
    if !spec["selector"]["matchLabels"].is_object() {
        bail!("spec.selector.matchLabels missing");
    }
    let endpoints = spec["endpoints"].as_array().cloned().unwrap_or_default();
    if endpoints.is_empty() || endpoints.iter().any(|e| !e["port"].is_string()) {
        bail!("spec.endpoints must name a port");
    }
    Ok(())
}

fn is_dns_label_or_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The document of `kind` (and `name` when given) among rendered ones.
pub fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: Option<&str>) -> Option<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && name.is_none_or(|n| d["metadata"]["name"] == n))
}
