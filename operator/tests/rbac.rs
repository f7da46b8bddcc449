//! Least privilege, checked on the real API server: the real operator runs every
//! DeepSeekDeployment in examples/ with the token of the chart's ServiceAccount, bound to the
//! chart's ClusterRole and Role rules, so the real RBAC authorizer judges every call (children
//! applied, pods watched and labelled with their node's zone, Secrets checked, a new revision
//! rolled out and the old one scaled down, Events published, the leader Lease taken and
//! released). No call may be refused (403), and the set of calls it made must equal what the
//! rules allow, both the rules `deepseek-operator manifests` prints and those of the Helm chart.
//!
//! After adding a child kind or an API call: run this test; it names each rule to add (or to
//! drop) in `operator/src/desired/manifests.rs` and `charts/deepseek-operator/files/*.yaml`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::recorder::ApiCall;
use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::DeepSeekDeployment;
use deepseek_operator::desired::manifests::{Rule, CLUSTER_RULES, LEASE_RULES, NODE_RULES};
use deepseek_operator::desired::naming::pdb_name;
use deepseek_operator::desired::ChildKind;
use deepseek_operator::reconcile::observe::secret_refs;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{json, Value};

/// The ServiceAccount the chart creates (release `deepseek-operator` in `deepseek-system`),
/// whose token the control plane's token file knows.
const SA_NAMESPACE: &str = "deepseek-system";
const SA_NAME: &str = "deepseek-operator";

/// Allowed calls a short scenario cannot show, each with the reason the operator needs it.
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

fn root() -> &'static std::path::Path {
    repo_root()
}

/// Every DeepSeekDeployment in examples/*.yaml.
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
            let v = Value::deserialize(doc)?;
            if v["kind"] == deepseek_crds::KIND {
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

fn chart_rule_values(file: &str) -> anyhow::Result<Value> {
    let path = root().join("charts/deepseek-operator/files").join(file);
    Ok(serde_yaml::from_str(&std::fs::read_to_string(path)?)?)
}

fn chart_rules(file: &str) -> anyhow::Result<Allowed> {
    let rules: Vec<ChartRule> = serde_json::from_value(chart_rule_values(file)?)?;
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

/// The chart's rules bound to its ServiceAccount: the ClusterRole through a
/// ClusterRoleBinding (cluster-wide mode), the read-only nodes ClusterRole, and the Lease Role
/// in the namespace holding the Lease.
async fn bind_chart_rules(cluster: &Cluster) -> anyhow::Result<()> {
    let client = cluster.client();
    let subject = json!([{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]);
    let name = format!("deepseek-operator-{}", cluster.ns);
    let pp = PatchParams::apply(TEST_MANAGER).force();
    Api::<ClusterRole>::all(client.clone())
        .patch(
            &name,
            &pp,
            &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": chart_rule_values("clusterrole-rules.yaml")?})),
        )
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subject})))
        .await?;
    // Reading nodes (zones) is its own read-only ClusterRole in both chart modes.
    let nodes = format!("{name}-nodes");
    Api::<ClusterRole>::all(client.clone())
        .patch(
            &nodes,
            &pp,
            &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": nodes}, "rules": chart_rule_values("node-rules.yaml")?})),
        )
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&nodes, &pp, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": nodes},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": nodes},
            "subjects": subject})))
        .await?;
    Api::<Role>::namespaced(client.clone(), &cluster.ns)
        .patch("deepseek-operator-lease", &pp, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deepseek-operator-lease"}, "rules": chart_rule_values("role-rules.yaml")?})))
        .await?;
    Api::<RoleBinding>::namespaced(client, &cluster.ns)
        .patch("deepseek-operator-lease", &pp, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "deepseek-operator-lease"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deepseek-operator-lease"},
            "subjects": subject})))
        .await?;
    Ok(())
}

/// Runs the scenario and returns every call the operator made, with one example request each.
async fn calls_of_the_operator() -> anyhow::Result<BTreeMap<(String, String, String), String>> {
    let cluster = Cluster::new().await?;
    bind_chart_rules(&cluster).await?;
    let resources = example_resources()?;
    assert!(
        resources.len() >= 4,
        "examples/ holds {} resources",
        resources.len()
    );
    let api: Api<DeepSeekDeployment> = cluster.api();
    for r in &resources {
        let mut dsd: DeepSeekDeployment = serde_json::from_value(r.clone())?;
        dsd.metadata.namespace = Some(cluster.ns.clone());
        for (_, secret) in secret_refs(&dsd) {
            if cluster.get::<Secret>(&secret).await.is_none() {
                cluster
                    .create_raw(json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": secret}, "data": {}}))
                    .await?;
            }
        }
        api.create(&PostParams::default(), &dsd).await?;
    }
    let client =
        cluster.recorded_client_with(cluster.service_account_config(SA_NAMESPACE, SA_NAME)?)?;
    let op = start_operator_with(&cluster, client, "op-rbac", true, |_| {}).await?;
    let names: Vec<String> = resources
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for name in &names {
        let uid = get(&cluster, name)
            .await
            .and_then(|d| d.uid())
            .unwrap_or_default();
        eventually(&format!("children of {name}"), || async {
            Some(owned_deployments(&cluster, &uid).await).filter(|d| !d.is_empty())
        })
        .await?;
    }
    // Pods are scheduled by kube-scheduler (zones by node labels: the operator reads the node
    // and labels the pod with its zone) and made Ready by kwok.
    for name in &names {
        eventually(&format!("{name} Ready"), || async {
            get(&cluster, name)
                .await
                .filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
        })
        .await?;
    }
    let cpu = "smollm2";
    let uid = get(&cluster, cpu)
        .await
        .and_then(|d| d.uid())
        .unwrap_or_default();
    eventually("the CPU example Ready", || async {
        get(&cluster, cpu)
            .await
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
    })
    .await?;
    let first = owned_deployments(&cluster, &uid)
        .await
        .first()
        .map(revision)
        .unwrap_or_default();
    patch_spec(
        &cluster,
        cpu,
        json!({"runtime": {"image": "registry.example.com/deepseek-runtime:v2"}}),
    )
    .await?;
    eventually("a second revision", || async {
        (owned_deployments(&cluster, &uid).await.len() == 2).then_some(())
    })
    .await?;
    // No canary steps: the new revision replaces the stable once ready; the old one is scaled
    // to zero and kept in the history for `rollbackTo`.
    eventually(
        "the new revision stable, the old one scaled to zero",
        || async {
            let stable = get(&cluster, cpu).await?.status?.stable_revision?.hash;
            let old_replicas = owned_deployments(&cluster, &uid)
                .await
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
        patch_spec(&cluster, cpu, json!({"replicas": replicas})).await?;
        eventually(&format!("PDB present: {present}"), || async {
            (cluster.get::<PodDisruptionBudget>(&pdb).await.is_some() == present).then_some(())
        })
        .await?;
    }
    settle(&op).await?;
    op.stop().await?;
    let requests = cluster.requests();
    let refused: Vec<String> = requests
        .iter()
        .filter(|r| r.code == 403)
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(
        refused.is_empty(),
        "the real RBAC authorizer refused the chart's ServiceAccount:\n  {}",
        refused.join("\n  ")
    );
    let mut calls: BTreeMap<ApiCall, Vec<&common::recorder::RequestRecord>> = BTreeMap::new();
    for r in &requests {
        for call in r.api_calls() {
            calls.entry(call).or_default().push(r);
        }
    }
    let mut out = BTreeMap::new();
    for (call, requests) in calls {
        let example = requests
            .first()
            .map(|r| format!("{} {}?{} -> {}", r.method, r.path, r.query, r.code))
            .unwrap_or_default();
        out.insert((call.verb, call.group, call.resource), example);
    }
    Ok(out)
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
