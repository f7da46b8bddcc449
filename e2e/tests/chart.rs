//! The Helm chart, through the real Helm v4 SDK: lint, render with the default values and with
//! every option on, values schema, the CRD copy, and equality with `deepseek-operator manifests`.

use deepseek_e2e::helm::{self, find, CHART, NAMESPACE};
use deepseek_e2e::repo;
use deepseek_operator::desired::manifests::{manifests, ManifestConfig};
use serde_json::{json, Value};

type TestResult = anyhow::Result<()>;

const ALL_ON: &str = "charts/deepseek-operator/ci/all-on-values.yaml";

fn lint_messages(values: Value) -> anyhow::Result<Vec<Value>> {
    let result = helm::run(vec![json!({"op": "lint", "values": values})])?.remove(0);
    assert_eq!(result["ok"], true, "{result}");
    let report = &result["report"];
    assert_eq!(report["errors"], json!([]), "{report:#}");
    Ok(report["messages"].as_array().cloned().unwrap_or_default())
}

#[test]
fn helm_lint_finds_no_error_or_warning_with_default_or_all_on_values() -> TestResult {
    for values in [json!({}), helm::values_file(ALL_ON)?] {
        let serious: Vec<Value> = lint_messages(values)?
            .into_iter()
            .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
            .collect();
        assert!(serious.is_empty(), "helm lint: {serious:#?}");
    }
    Ok(())
}

#[test]
fn every_template_renders_valid_kubernetes_objects_with_default_values() -> TestResult {
    let docs = helm::render(json!({}))?;
    for (template, doc) in &docs {
        helm::check_object(doc).map_err(|e| anyhow::anyhow!("{template}: {e:#}"))?;
    }
    let kinds: Vec<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ]
    );
    Ok(())
}

#[test]
fn every_template_renders_valid_kubernetes_objects_with_every_option_on() -> TestResult {
    let docs = helm::render(helm::values_file(ALL_ON)?)?;
    for (template, doc) in &docs {
        helm::check_object(doc).map_err(|e| anyhow::anyhow!("{template}: {e:#}"))?;
    }
    for kind in [
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
        "RoleBinding",
    ] {
        assert!(find(&docs, kind, None).is_some(), "no {kind} rendered");
    }
    // One watched namespace: the namespaced rules are a Role there; the only cluster-wide grant
    // is reading nodes (a RoleBinding cannot grant a cluster-scoped resource).
    let cluster_roles: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding")
        .collect();
    assert_eq!(cluster_roles.len(), 2, "{cluster_roles:#?}");
    let nodes = find(&docs, "ClusterRole", Some("deepseek-operator-nodes")).cloned();
    assert_eq!(
        nodes.map(|r| r["rules"].clone()),
        Some(json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]))
    );
    for kind in ["Role", "RoleBinding"] {
        let watch = find(&docs, kind, Some("deepseek-operator-watch"));
        assert_eq!(
            watch.map(|b| &b["metadata"]["namespace"]),
            Some(&json!("inference")),
            "{kind}"
        );
    }
    let dep = find(&docs, "Deployment", None).cloned().unwrap_or_default();
    let pod = &dep["spec"]["template"];
    for (key, want) in dep["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &pod["metadata"]["labels"][key], want,
            "selector label {key}"
        );
    }
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example.com/deepseek/deepseek-operator@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    );
    let env: Vec<&str> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        env.contains(&"WATCH_NAMESPACE") && env.contains(&"HTTPS_PROXY"),
        "{env:?}"
    );
    let monitor = find(&docs, "ServiceMonitor", None)
        .cloned()
        .unwrap_or_default();
    let service = find(&docs, "Service", None).cloned().unwrap_or_default();
    for (key, want) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], want,
            "ServiceMonitor selects the Service"
        );
    }
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    Ok(())
}

#[test]
fn the_values_schema_rejects_the_bad_values_file_and_each_wrong_value() -> TestResult {
    let mut cases = vec![helm::values_file("charts/tests/bad-values.yaml")?];
    cases.extend([
        json!({"replicaCount": "two"}),
        json!({"image": {"repository": "x", "pullPolicy": "Sometimes"}}),
        json!({"metricsPort": 80}),
        json!({"leaderElection": {"enabled": "yes"}}),
        json!({"serviceMonitor": {"interval": "soon"}}),
        json!({"watchNamespace": "Not_A_Namespace"}),
        json!({"unknownKey": true}),
    ]);
    let n = cases.len();
    let mut ops: Vec<Value> = cases
        .iter()
        .map(|v| json!({"op": "validate", "values": v}))
        .collect();
    ops.push(json!({"op": "validate", "values": helm::values_file(ALL_ON)?}));
    ops.push(json!({"op": "validate", "values": {}}));
    let results = helm::run(ops)?;
    for (case, result) in cases.iter().zip(&results) {
        assert_eq!(result["ok"], false, "accepted bad values {case}");
        assert!(
            result["error"]
                .as_str()
                .unwrap_or_default()
                .contains("HelmValuesError"),
            "{result}"
        );
    }
    assert_eq!(
        results[n]["ok"], true,
        "all-on values rejected: {}",
        results[n]
    );
    assert_eq!(
        results[n + 1]["ok"],
        true,
        "defaults rejected: {}",
        results[n + 1]
    );
    Ok(())
}

#[test]
fn the_chart_crd_equals_the_generated_crd_file() -> TestResult {
    let generated = repo::read("crds/deepseekdeployments.yaml")?;
    let in_chart = repo::read(&format!("{CHART}/crds/deepseekdeployments.yaml"))?;
    assert!(
        generated == in_chart,
        "{CHART}/crds/deepseekdeployments.yaml differs from crds/: run `make crds`"
    );
    let result = helm::run(vec![json!({"op": "crds"})])?.remove(0);
    let crds = result["crds"].as_array().cloned().unwrap_or_default();
    assert_eq!(crds.len(), 1, "{result}");
    let loaded: Value = serde_yaml::from_str(crds[0]["data"].as_str().unwrap_or_default())?;
    assert_eq!(loaded, serde_json::to_value(deepseek_crds::crd::crd())?);
    Ok(())
}

#[test]
fn chart_and_app_versions_follow_the_workspace_version() -> TestResult {
    let chart: Value = serde_yaml::from_str(&repo::read(&format!("{CHART}/Chart.yaml"))?)?;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
    Ok(())
}

/// One key line of values.yaml: its indent, name, whether a comment sits right above it, and
/// the index of its parent key.
struct KeyLine {
    indent: usize,
    name: String,
    commented: bool,
    parent: Option<usize>,
}

fn key_lines(text: &str) -> Vec<KeyLine> {
    let mut keys: Vec<KeyLine> = Vec::new();
    let mut above_is_comment = false;
    for line in text.lines() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.starts_with('#') {
            above_is_comment = true;
            continue;
        }
        let name = body.split(':').next().unwrap_or_default();
        let is_key = !body.starts_with('-')
            && body.contains(':')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if is_key {
            let parent = keys.iter().rposition(|k| k.indent < indent);
            keys.push(KeyLine {
                indent,
                name: name.to_string(),
                commented: above_is_comment,
                parent,
            });
        }
        above_is_comment = false;
    }
    keys
}

#[test]
fn every_value_in_values_yaml_is_documented_and_typed_in_the_schema() -> TestResult {
    let text = repo::read(&format!("{CHART}/values.yaml"))?;
    let schema: Value = serde_json::from_str(&repo::read(&format!("{CHART}/values.schema.json"))?)?;
    let keys = key_lines(&text);
    let mut problems = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let children: Vec<&KeyLine> = keys.iter().filter(|c| c.parent == Some(i)).collect();
        // Documented: its own comment; or a section whose every child has one; or part of a
        // structured default (resources, security contexts) whose top key is documented.
        let section = !children.is_empty() && children.iter().all(|c| c.commented);
        let mut ancestor = k.parent;
        let mut inside_documented = false;
        while let Some(a) = ancestor {
            inside_documented |= keys[a].commented;
            ancestor = keys[a].parent;
        }
        if !(k.commented || section || inside_documented) {
            problems.push(format!("{}: no comment documents it", k.name));
        }
        if k.parent.is_none() && schema["properties"][&k.name].is_null() {
            problems.push(format!("{}: not in values.schema.json", k.name));
        }
    }
    assert!(keys.len() > 20, "parsed only {} keys", keys.len());
    assert!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

fn kind_of<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or(&Value::Null)
}

#[test]
fn default_chart_objects_match_deepseek_operator_manifests() -> TestResult {
    let cfg = ManifestConfig::default();
    assert_eq!(cfg.namespace, NAMESPACE);
    let printed = manifests(&cfg)?;
    let docs = helm::render(json!({}))?;
    let chart: Vec<Value> = docs.into_iter().map(|(_, d)| d).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    ] {
        let (m, c) = (kind_of(&printed, kind), kind_of(&chart, kind));
        assert_eq!(m["metadata"]["name"], c["metadata"]["name"], "{kind} name");
        assert_eq!(
            m["metadata"]["namespace"], c["metadata"]["namespace"],
            "{kind} namespace"
        );
        for (key, want) in m["metadata"]["labels"].as_object().into_iter().flatten() {
            assert_eq!(&c["metadata"]["labels"][key], want, "{kind} label {key}");
        }
        for field in ["rules", "roleRef", "subjects"] {
            assert_eq!(m[field], c[field], "{kind} {field}");
        }
    }
    let (m, c) = (
        kind_of(&printed, "Deployment"),
        kind_of(&chart, "Deployment"),
    );
    assert_eq!(m["spec"]["replicas"], c["spec"]["replicas"]);
    let (mp, cp) = (
        &m["spec"]["template"]["spec"],
        &c["spec"]["template"]["spec"],
    );
    for field in ["serviceAccountName", "securityContext"] {
        assert_eq!(mp[field], cp[field], "pod {field}");
    }
    let mut chart_container = cp["containers"][0].clone();
    // The chart also sets the pull policy (a value); everything else is the same container.
    if let Some(obj) = chart_container.as_object_mut() {
        obj.remove("imagePullPolicy");
    }
    assert_eq!(mp["containers"][0], chart_container, "operator container");
    assert_eq!(cp["containers"].as_array().map(Vec::len), Some(1));
    Ok(())
}
