//! The real controller against the real control plane: monitoring children with and without
//! the monitoring.coreos.com CRDs (discovery), the backup CronJob and its last success in status,
//! multi-zone spread with per-zone disruption budgets (the real scheduler spreading pods over
//! kwok's zoned nodes), and a zone losing all its ready pods.

mod common;

use common::*;
use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::Phase;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

const MONITORING: &str = "monitoring.coreos.com";
const ZONE_A: &str = "europe-west4-a";
const ZONE_B: &str = "europe-west4-b";

/// The monitoring CRDs are cluster-wide: the test that needs them absent runs alone (write),
/// those that need them installed together (read). Test binaries run one after the other.
static MONITORING_CRDS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn monitoring_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{MONITORING}")},
        "spec": {"group": MONITORING, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

const MONITORING_KINDS: [(&str, &str); 2] = [
    ("PrometheusRule", "prometheusrules"),
    ("PodMonitor", "podmonitors"),
];

/// Installs PrometheusRule and PodMonitor CRDs (schemaless stand-ins for the Prometheus
/// operator's) and waits until both are served.
async fn install_monitoring_crds(cluster: &Cluster) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    for (kind, plural) in MONITORING_KINDS {
        let crd = monitoring_crd(kind, plural);
        let name = format!("{plural}.{MONITORING}");
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        eventually("the monitoring CRD Established", || async {
            api.get(&name)
                .await
                .ok()?
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await?;
    }
    Ok(())
}

async fn remove_monitoring_crds(cluster: &Cluster) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    for (_, plural) in MONITORING_KINDS {
        let name = format!("{plural}.{MONITORING}");
        let _ = api.delete(&name, &DeleteParams::default()).await;
        eventually("the monitoring CRD gone", || async {
            api.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await?;
    }
    Ok(())
}

async fn monitoring_child(cluster: &Cluster, plural: &str) -> Option<Value> {
    let ar = ApiResource {
        group: MONITORING.into(),
        version: "v1".into(),
        api_version: format!("{MONITORING}/v1"),
        kind: String::new(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), &cluster.ns, &ar);
    let obj = api.get_opt("chat-monitoring").await.ok()??;
    serde_json::to_value(obj).ok()
}

#[tokio::test]
async fn without_monitoring_crds_the_rules_are_skipped_and_a_condition_says_why() -> TestResult {
    let _alone = MONITORING_CRDS.write().await;
    let cluster = Cluster::new().await?;
    remove_monitoring_crds(&cluster).await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let d = eventually("MonitoringAvailable=False", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::MONITORING).is_some_and(|c| c.0 == "False"))
    })
    .await?;
    let (_, reason, message) = condition(&d, ct::MONITORING).unwrap_or_default();
    assert_eq!(reason, reasons::MONITORING_CRDS_MISSING);
    assert!(
        message.contains("PrometheusRule") && message.contains("PodMonitor"),
        "{message}"
    );
    assert_eq!(
        owned_deployments(&cluster, &uid).await.len(),
        1,
        "serving is unaffected"
    );
    assert!(
        cluster.get::<ConfigMap>("chat-monitoring").await.is_none(),
        "no dashboard without Prometheus"
    );
    eventually("an Event naming the missing CRDs", || async {
        Some(events_with_reason(&cluster, reasons::MONITORING_CRDS_MISSING).await)
            .filter(|e| !e.is_empty())
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn with_monitoring_crds_the_rule_pod_monitor_and_dashboard_are_applied() -> TestResult {
    let _crds = MONITORING_CRDS.read().await;
    let cluster = Cluster::new().await?;
    install_monitoring_crds(&cluster).await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let rule = eventually("the PrometheusRule", || async {
        monitoring_child(&cluster, "prometheusrules").await
    })
    .await?;
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let text = rule["spec"]["groups"].to_string();
    for alert in deepseek_operator::desired::prometheus_rule::alerts::ALL {
        assert!(text.contains(alert), "{alert} missing from {text}");
    }
    // Children are applied one after the other: the rule may be there before the rest.
    let monitor = eventually("the PodMonitor", || async {
        monitoring_child(&cluster, "podmonitors").await
    })
    .await?;
    // The admin port: /metrics is not served on the chat port.
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "admin");
    eventually("the dashboard ConfigMap", || async {
        cluster.get::<ConfigMap>("chat-monitoring").await
    })
    .await?;
    eventually("MonitoringAvailable=True", || async {
        get(&cluster, "chat").await.filter(|d| {
            condition(d, ct::MONITORING)
                .is_some_and(|c| c.0 == "True" && c.1 == reasons::MONITORING_APPLIED)
        })
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn disabling_monitoring_prunes_the_monitoring_children() -> TestResult {
    let _crds = MONITORING_CRDS.read().await;
    let cluster = Cluster::new().await?;
    install_monitoring_crds(&cluster).await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    create(&cluster, dsd("chat")).await?;
    eventually("the PrometheusRule", || async {
        monitoring_child(&cluster, "prometheusrules").await
    })
    .await?;
    patch_spec(&cluster, "chat", json!({"monitoring": {"enabled": false}})).await?;
    eventually("rule, monitor and dashboard pruned", || async {
        let gone = monitoring_child(&cluster, "prometheusrules")
            .await
            .is_none()
            && monitoring_child(&cluster, "podmonitors").await.is_none()
            && cluster.get::<ConfigMap>("chat-monitoring").await.is_none();
        gone.then_some(())
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn a_backup_spec_becomes_a_cron_job_and_its_last_success_shows_in_status() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["backup"] = json!({
        "schedule": "0 3 * * *",
        "keep": 5,
        "destination": {"s3": {"bucket": "backups", "prefix": "chat", "endpoint": "http://minio:9000",
            "region": "us-east-1", "secretRef": {"name": "backup-creds"}}},
    });
    create(&cluster, body).await?;
    let cron = eventually("the backup CronJob", || async {
        cluster.get::<CronJob>("chat-backup").await
    })
    .await?;
    let spec = cron.spec.clone();
    assert_eq!(spec.schedule, "0 3 * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = spec
        .job_template
        .spec
        .and_then(|j| j.template.spec)
        .unwrap_or_default();
    let backup = &pod.containers[0];
    assert_eq!(
        backup.args.clone().unwrap_or_default(),
        [
            "backup",
            "--src",
            "/models",
            "--dest",
            "s3://backups/chat",
            "--keep",
            "5",
            "--s3-endpoint",
            "http://minio:9000",
            "--s3-region",
            "us-east-1"
        ]
    );
    let secret = backup
        .env_from
        .as_ref()
        .and_then(|e| e[0].secret_ref.as_ref())
        .map(|s| s.name.clone());
    assert_eq!(secret.as_deref(), Some("backup-creds"));
    assert_eq!(
        pod.init_containers.unwrap_or_default()[0].name,
        "fetch",
        "files are verified first"
    );
    // What the CronJob controller writes when a backup Job succeeds.
    cluster
        .api::<CronJob>()
        .patch_status(
            "chat-backup",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastSuccessfulTime": "2026-01-02T03:04:05Z"}})),
        )
        .await?;
    let d = eventually("status.lastBackup", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| d.status.as_ref().is_some_and(|s| s.last_backup.is_some()))
    })
    .await?;
    let record = d
        .status
        .and_then(|s| s.last_backup)
        .ok_or_else(|| anyhow::anyhow!("no record"))?;
    assert_eq!(
        record.time.map(|t| t.0.to_string()),
        Some("2026-01-02T03:04:05Z".into())
    );
    assert_eq!(record.digest.len(), 64);
    op.stop().await
}

fn zoned(name: &str) -> Value {
    let mut body = dsd(name);
    body["spec"]["replicas"] = json!(2);
    body["spec"]["placement"] = json!({"zones": [ZONE_A, ZONE_B]});
    body
}

#[tokio::test]
async fn zones_spread_replicas_under_one_disruption_budget() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, zoned("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let deps = eventually("the runtime Deployment", || async {
        Some(owned_deployments(&cluster, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    let pod = deps[0].spec.template.spec.clone().unwrap_or_default();
    let spread = pod.topology_spread_constraints.unwrap_or_default();
    assert_eq!(spread.len(), 1);
    assert_eq!(
        (
            spread[0].topology_key.as_str(),
            spread[0].when_unsatisfiable.as_str(),
            spread[0].max_skew
        ),
        ("topology.kubernetes.io/zone", "DoNotSchedule", 1)
    );
    let anti = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .unwrap_or_default();
    let keys: Vec<String> = anti
        .preferred_during_scheduling_ignored_during_execution
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.pod_affinity_term.topology_key)
        .collect();
    assert!(
        keys.contains(&"topology.kubernetes.io/zone".to_string()),
        "{keys:?}"
    );
    // One budget over every runtime pod (a pod under two budgets cannot be evicted), and one
    // that lets a drain evict a pod.
    let pdb = eventually("the runtime budget", || async {
        cluster.get::<PodDisruptionBudget>("chat").await
    })
    .await?;
    assert_eq!(
        pdb.spec.unwrap_or_default().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    for zone in [ZONE_A, ZONE_B] {
        let name = format!("chat-zone-{zone}");
        assert!(
            cluster.get::<PodDisruptionBudget>(&name).await.is_none(),
            "{name}"
        );
    }
    op.stop().await
}

async fn zones_of(cluster: &Cluster) -> Vec<(String, i32)> {
    get(cluster, "chat")
        .await
        .and_then(|d| d.status)
        .map(|s| {
            s.zones
                .into_iter()
                .map(|z| (z.zone, z.ready_replicas))
                .collect()
        })
        .unwrap_or_default()
}

async fn zone_of_node(cluster: &Cluster, node: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(cluster.client());
    nodes
        .get_opt(node)
        .await
        .ok()??
        .labels()
        .get("topology.kubernetes.io/zone")
        .cloned()
}

#[tokio::test]
async fn a_zone_losing_all_its_pods_shows_in_status() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    create(&cluster, zoned("chat")).await?;
    // The scheduler spreads the two pods over the two zones' kwok nodes; kwok makes them Ready.
    eventually("both zones serving", || async {
        let d = get(&cluster, "chat").await?;
        let ok = condition(&d, ct::ZONES_AVAILABLE).is_some_and(|c| c.0 == "True");
        (ok && zones_of(&cluster).await == [(ZONE_A.into(), 1), (ZONE_B.into(), 1)]).then_some(())
    })
    .await?;
    let mut in_b = None;
    // The runtime pods (the router's pods carry no revision).
    let runtime = cluster.list::<Pod>().await.into_iter().filter(|p| {
        p.labels()
            .contains_key(deepseek_operator::reconcile::labels::REVISION)
    });
    for p in runtime {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if zone_of_node(&cluster, &node).await.as_deref() == Some(ZONE_B) {
            in_b = Some(p);
        }
    }
    let pod = in_b.ok_or_else(|| anyhow::anyhow!("no pod scheduled in {ZONE_B}"))?;
    // Zone b's only pod fails its readiness probe, as its kubelet reports it (kwok leaves a
    // Running pod's status alone).
    cluster
        .api::<Pod>()
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "ReadinessProbeFailed"},
                {"type": "ContainersReady", "status": "False"}]}})),
        )
        .await?;
    let d = eventually("ZonesAvailable=False", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::ZONES_AVAILABLE).is_some_and(|c| c.0 == "False"))
    })
    .await?;
    let (_, reason, message) = condition(&d, ct::ZONES_AVAILABLE).unwrap_or_default();
    assert_eq!(reason, reasons::ZONE_WITHOUT_READY_REPLICAS);
    assert!(message.contains(ZONE_B), "{message}");
    assert_eq!(
        zones_of(&cluster).await,
        [(ZONE_A.into(), 1), (ZONE_B.into(), 0)]
    );
    assert_eq!(d.status.and_then(|s| s.phase), Some(Phase::Degraded));
    eventually("an Event for the empty zone", || async {
        Some(events_with_reason(&cluster, reasons::ZONE_WITHOUT_READY_REPLICAS).await)
            .filter(|e| !e.is_empty())
    })
    .await?;
    op.stop().await
}
