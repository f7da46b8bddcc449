//! Least privilege, checked: the real operator runs every DeepSeekDeployment in examples/
//! against the fake API server (children applied, pods watched, Secrets checked, a new revision
//! rolled out and the old one scaled down, Events published, the leader Lease taken and released),
//! and the set of API calls it made must equal what the RBAC rules allow, both the rules
//! `deepseek-operator manifests` prints and those of the Helm chart.
//!
//! After adding a child kind or an API call: run this test; it names each rule to add (or to
//! drop) in `operator/src/desired/manifests.rs` and `charts/deepseek-operator/files/*.yaml`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::DeepSeekDeployment;
use deepseek_operator::desired::manifests::{Rule, CLUSTER_RULES, LEASE_RULES, NODE_RULES};
use deepseek_operator::desired::naming::pdb_name;
use deepseek_operator::desired::ChildKind;
use deepseek_operator::reconcile::observe::secret_refs;
use fake_apiserver::{ApiCall, FakeApiServer, ResourceDef};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{json, Value};

/// Allowed calls a short scenario against the fake server cannot show, each with the reason
/// the operator needs it on a real cluster.
const NEEDED_ONLY_ON_REAL_CLUSTERS: &[(&str, &str, &str, &str)] = &[
    (
        "patch",
        "events.k8s.io",
        "events",
        "kube's event Recorder patches the series of an Event that repeats within its cache window",
    ),
    (
        "update",
        "inference.deepseek-k8s.dev",
        "deepseekdeployments/finalizers",
        "admission (OwnerReferencesPermissionEnforcement) checks it when children set blockOwnerDeletion",
    ),
];

/// Kinds a helper may add as children that the fake server does not serve by default.
fn register_optional_kinds(server: &FakeApiServer) {
    server.register(ResourceDef::new(
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
        "prometheusrules",
    ));
    server.register(ResourceDef::new(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitors",
    ));
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every DeepSeekDeployment in examples/*.yaml, moved into the test namespace.
fn example_resources() -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut v = Value::deserialize(doc)?;
            if v["kind"] == deepseek_crds::KIND {
                v["metadata"]["namespace"] = json!(NS);
                out.push(v);
            }
        }
    }
    Ok(out)
}

type Allowed = BTreeSet<(String, String, String)>;

fn expand(rules: &[Rule]) -> Allowed {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in rules {
        for r in *resources {
            for v in *verbs {
                out.insert((v.to_string(), group.to_string(), r.to_string()));
            }
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartRule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

fn chart_rules(file: &str) -> anyhow::Result<Allowed> {
    let path = root().join("charts/deepseek-operator/files").join(file);
    let rules: Vec<ChartRule> = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    let mut out = BTreeSet::new();
    for rule in rules {
        for g in &rule.api_groups {
            for r in &rule.resources {
                for v in &rule.verbs {
                    out.insert((v.clone(), g.clone(), r.clone()));
                }
            }
        }
    }
    Ok(out)
}

fn one(call: &(String, String, String)) -> String {
    let (v, g, r) = call;
    ApiCall {
        verb: v.clone(),
        group: g.clone(),
        resource: r.clone(),
    }
    .to_string()
}

fn show<'a>(calls: impl IntoIterator<Item = &'a (String, String, String)>) -> Vec<String> {
    calls.into_iter().map(one).collect()
}

/// Runs the scenario and returns every call the operator made, with one example request each.
async fn calls_of_the_operator() -> anyhow::Result<BTreeMap<(String, String, String), String>> {
    let server = fake().await?;
    register_optional_kinds(&server);
    let resources = example_resources()?;
    assert!(
        resources.len() >= 4,
        "examples/ holds {} resources",
        resources.len()
    );
    for r in &resources {
        let dsd: DeepSeekDeployment = serde_json::from_value(r.clone())?;
        for (_, secret) in secret_refs(&dsd) {
            let exists = server.get_raw("", "secrets", NS, &secret).is_some();
            if !exists {
                server.create_raw(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": secret, "namespace": NS}, "data": {}}))?;
            }
        }
        // In-process, so the request log holds the operator's calls only.
        server.create_raw(r.clone())?;
    }
    let op = start_operator(&server, "op-rbac", true).await?;
    let names: Vec<String> = resources
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for name in &names {
        let uid = get(&server, name).and_then(|d| d.uid()).unwrap_or_default();
        eventually(&format!("children of {name}"), || async {
            Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
        })
        .await?;
    }
    mark_all_ready(&server)?;
    let cpu = "smollm2";
    let uid = get(&server, cpu).and_then(|d| d.uid()).unwrap_or_default();
    eventually("the CPU example Ready", || async {
        get(&server, cpu).filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
    })
    .await?;
    let first = owned_deployments(&server, &uid)
        .first()
        .map(revision)
        .unwrap_or_default();
    server.update::<DeepSeekDeployment>(NS, cpu, |o| {
        o["spec"]["runtime"]["image"] = json!("registry.example.com/deepseek-runtime:v2");
    })?;
    eventually("a second revision", || async {
        (owned_deployments(&server, &uid).len() == 2).then_some(())
    })
    .await?;
    mark_all_ready(&server)?;
    // No canary steps: the new revision replaces the stable once ready; the old one is scaled
    // to zero and kept in the history for `rollbackTo`.
    eventually(
        "the new revision stable, the old one scaled to zero",
        || async {
            let stable = get(&server, cpu)?.status?.stable_revision?.hash;
            let old_replicas = owned_deployments(&server, &uid)
                .iter()
                .find(|d| revision(d) == first)
                .and_then(|d| d.spec.replicas);
            (stable != first && old_replicas == Some(0)).then_some(())
        },
    )
    .await?;
    // Two replicas bring a PodDisruptionBudget, one takes it away again (pruned).
    let pdb = pdb_name(cpu);
    for (replicas, present) in [(2, true), (1, false)] {
        server
            .update::<DeepSeekDeployment>(NS, cpu, |o| o["spec"]["replicas"] = json!(replicas))?;
        eventually(&format!("PDB present: {present}"), || async {
            (server
                .get_raw("policy", "poddisruptionbudgets", NS, &pdb)
                .is_some()
                == present)
                .then_some(())
        })
        .await?;
    }
    settle(&op).await?;
    op.stop().await?;
    let mut out = BTreeMap::new();
    for (call, requests) in server.api_calls() {
        let example = requests
            .first()
            .map(|r| format!("{} {}?{} -> {}", r.method, r.path, r.query, r.code))
            .unwrap_or_default();
        out.insert((call.verb, call.group, call.resource), example);
    }
    Ok(out)
}

fn mark_all_ready(server: &FakeApiServer) -> anyhow::Result<()> {
    for d in server.list::<Deployment>(Some(NS)) {
        let n = d.spec.replicas.unwrap_or(1);
        server.set_status::<Deployment>(
            NS,
            &d.name_any(),
            json!({"replicas": n, "readyReplicas": n, "availableReplicas": n, "updatedReplicas": n,
                "observedGeneration": d.metadata.generation}),
        )?;
    }
    Ok(())
}

/// Calls the code makes for every child kind whether or not a scenario shows them: the apply
/// (server-side apply: patch, and create for a new object) and the pruning of children no
/// longer desired (list, delete), for each kind in `ChildKind::ALL`.
fn structural_calls() -> Allowed {
    let mut out = BTreeSet::new();
    for kind in ChildKind::ALL {
        for verb in ["create", "patch", "list", "delete"] {
            out.insert((
                verb.to_string(),
                kind.group().to_string(),
                kind.plural().to_string(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn rbac_of_the_manifests_and_the_chart_allows_exactly_the_calls_the_operator_makes(
) -> TestResult {
    let mut manifest_rules = expand(CLUSTER_RULES);
    manifest_rules.extend(expand(LEASE_RULES));
    manifest_rules.extend(expand(NODE_RULES));
    let mut chart = chart_rules("clusterrole-rules.yaml")?;
    chart.extend(chart_rules("role-rules.yaml")?);
    chart.extend(chart_rules("node-rules.yaml")?);
    assert_eq!(
        show(&manifest_rules),
        show(&chart),
        "the chart's RBAC (charts/deepseek-operator/files/) differs from manifests.rs"
    );
    let mut called = calls_of_the_operator().await?;
    for call in structural_calls() {
        called
            .entry(call)
            .or_insert_with(|| "(apply or prune of a ChildKind::ALL kind)".to_string());
    }
    let exceptions: Allowed = NEEDED_ONLY_ON_REAL_CLUSTERS
        .iter()
        .map(|(v, g, r, _)| (v.to_string(), g.to_string(), r.to_string()))
        .collect();
    let missing: Vec<String> = called
        .iter()
        .filter(|(c, _)| !manifest_rules.contains(*c))
        .map(|(call, example)| format!("{}   (e.g. {example})", one(call)))
        .collect();
    let unused: Allowed = manifest_rules
        .iter()
        .filter(|c| !called.contains_key(*c) && !exceptions.contains(*c))
        .cloned()
        .collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "RBAC differs from the calls the operator makes.\n\
         Add these rules (operator/src/desired/manifests.rs and charts/deepseek-operator/files/):\n  {}\n\
         Remove these rules, never used (or list them in NEEDED_ONLY_ON_REAL_CLUSTERS with why):\n  {}\n\
         All calls made:\n  {}",
        missing.join("\n  "),
        show(&unused).join("\n  "),
        show(called.keys()).join("\n  "),
    );
    // Every exception must still be allowed: it documents a rule, not a hole.
    for e in &exceptions {
        assert!(
            manifest_rules.contains(e),
            "exception {e:?} is not an allowed rule"
        );
    }
    Ok(())
}
