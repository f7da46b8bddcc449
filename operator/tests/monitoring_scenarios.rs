//! The real controller against the fake API server: monitoring children with and without the
//! monitoring.coreos.com CRDs (discovery), the backup CronJob and its last success in status,
//! multi-zone spread with per-zone disruption budgets, and a zone losing all its pods.

mod common;

use common::*;
use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::Phase;
use fake_apiserver::{monitoring_defs, FakeApiServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde_json::{json, Value};

const MONITORING: &str = "monitoring.coreos.com";

fn monitoring_child(server: &FakeApiServer, plural: &str) -> Option<Value> {
    server.get_raw(MONITORING, plural, NS, "chat-monitoring")
}

#[tokio::test]
async fn without_monitoring_crds_the_rules_are_skipped_and_a_condition_says_why() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let d = eventually("MonitoringAvailable=False", || async {
        get(&server, "chat")
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
        owned_deployments(&server, &uid).len(),
        1,
        "serving is unaffected"
    );
    assert!(
        server.get::<ConfigMap>(NS, "chat-monitoring").is_none(),
        "no dashboard without Prometheus"
    );
    eventually("an Event naming the missing CRDs", || async {
        Some(events_with_reason(
            &server,
            reasons::MONITORING_CRDS_MISSING,
        ))
        .filter(|e| !e.is_empty())
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn with_monitoring_crds_the_rule_pod_monitor_and_dashboard_are_applied() -> TestResult {
    let server = fake().await?;
    for def in monitoring_defs() {
        server.register(def);
    }
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let rule = eventually("the PrometheusRule", || async {
        monitoring_child(&server, "prometheusrules")
    })
    .await?;
    assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let text = rule["spec"]["groups"].to_string();
    for alert in deepseek_operator::desired::prometheus_rule::alerts::ALL {
        assert!(text.contains(alert), "{alert} missing from {text}");
    }
    // Children are applied one after the other: the rule may be there before the rest.
    let monitor = eventually("the PodMonitor", || async {
        monitoring_child(&server, "podmonitors")
    })
    .await?;
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "http");
    eventually("the dashboard ConfigMap", || async {
        server.get::<ConfigMap>(NS, "chat-monitoring")
    })
    .await?;
    eventually("MonitoringAvailable=True", || async {
        get(&server, "chat").filter(|d| {
            condition(d, ct::MONITORING)
                .is_some_and(|c| c.0 == "True" && c.1 == reasons::MONITORING_APPLIED)
        })
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn disabling_monitoring_prunes_the_monitoring_children() -> TestResult {
    let server = fake().await?;
    for def in monitoring_defs() {
        server.register(def);
    }
    let op = start_operator(&server, "op-a", false).await?;
    create(&server, dsd("chat")).await?;
    eventually("the PrometheusRule", || async {
        monitoring_child(&server, "prometheusrules")
    })
    .await?;
    patch_spec(&server, "chat", json!({"monitoring": {"enabled": false}})).await?;
    eventually("rule, monitor and dashboard pruned", || async {
        let gone = monitoring_child(&server, "prometheusrules").is_none()
            && monitoring_child(&server, "podmonitors").is_none()
            && server.get::<ConfigMap>(NS, "chat-monitoring").is_none();
        gone.then_some(())
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn a_backup_spec_becomes_a_cron_job_and_its_last_success_shows_in_status() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["backup"] = json!({
        "schedule": "0 3 * * *",
        "keep": 5,
        "destination": {"s3": {"bucket": "backups", "prefix": "chat", "endpoint": "http://minio:9000",
            "region": "us-east-1", "secretRef": {"name": "backup-creds"}}},
    });
    create(&server, body).await?;
    let cron = eventually("the backup CronJob", || async {
        server.get::<CronJob>(NS, "chat-backup")
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
    server.set_status::<CronJob>(
        NS,
        "chat-backup",
        json!({"lastSuccessfulTime": "2026-01-02T03:04:05Z"}),
    )?;
    let d = eventually("status.lastBackup", || async {
        get(&server, "chat").filter(|d| d.status.as_ref().is_some_and(|s| s.last_backup.is_some()))
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
    body["spec"]["placement"] = json!({"zones": ["zone-a", "zone-b"]});
    body
}

#[tokio::test]
async fn zones_spread_replicas_under_one_disruption_budget() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, zoned("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let deps = eventually("the runtime Deployment", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
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
        server.get::<PodDisruptionBudget>(NS, "chat")
    })
    .await?;
    assert_eq!(
        pdb.spec.unwrap_or_default().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    for zone in ["zone-a", "zone-b"] {
        let name = format!("chat-zone-{zone}");
        assert!(
            server.get::<PodDisruptionBudget>(NS, &name).is_none(),
            "{name}"
        );
    }
    op.stop().await
}

/// A scheduled, ready runtime pod of `dep` on `node`, as the ReplicaSet and kubelet would make it.
fn runtime_pod(dep: &Deployment, name: &str, node: &str) -> Value {
    let labels = dep
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "runtime", "image": "x"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn node(name: &str, zone: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}}})
}

fn zones_of(server: &FakeApiServer) -> Vec<(String, i32)> {
    get(server, "chat")
        .and_then(|d| d.status)
        .map(|s| {
            s.zones
                .into_iter()
                .map(|z| (z.zone, z.ready_replicas))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_zone_losing_all_its_pods_shows_in_status() -> TestResult {
    let server = fake().await?;
    server.create_raw(node("node-a", "zone-a"))?;
    server.create_raw(node("node-b", "zone-b"))?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, zoned("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let dep = eventually("the runtime Deployment", || async {
        owned_deployments(&server, &uid).into_iter().next()
    })
    .await?;
    server.create_raw(runtime_pod(&dep, "chat-a", "node-a"))?;
    server.create_raw(runtime_pod(&dep, "chat-b", "node-b"))?;
    server.set_status::<Deployment>(
        NS,
        &dep.name_any(),
        json!({"replicas": 2, "readyReplicas": 2}),
    )?;
    eventually("both zones serving", || async {
        let d = get(&server, "chat")?;
        let ok = condition(&d, ct::ZONES_AVAILABLE).is_some_and(|c| c.0 == "True");
        (ok && zones_of(&server) == [("zone-a".into(), 1), ("zone-b".into(), 1)]).then_some(())
    })
    .await?;
    server.delete::<Pod>(NS, "chat-b")?;
    server.set_status::<Deployment>(
        NS,
        &dep.name_any(),
        json!({"replicas": 2, "readyReplicas": 1}),
    )?;
    let d = eventually("ZonesAvailable=False", || async {
        get(&server, "chat")
            .filter(|d| condition(d, ct::ZONES_AVAILABLE).is_some_and(|c| c.0 == "False"))
    })
    .await?;
    let (_, reason, message) = condition(&d, ct::ZONES_AVAILABLE).unwrap_or_default();
    assert_eq!(reason, reasons::ZONE_WITHOUT_READY_REPLICAS);
    assert!(message.contains("zone-b"), "{message}");
    assert_eq!(
        zones_of(&server),
        [("zone-a".into(), 1), ("zone-b".into(), 0)]
    );
    assert_eq!(d.status.and_then(|s| s.phase), Some(Phase::Degraded));
    eventually("an Event for the empty zone", || async {
        Some(events_with_reason(
            &server,
            reasons::ZONE_WITHOUT_READY_REPLICAS,
        ))
        .filter(|e| !e.is_empty())
    })
    .await?;
    op.stop().await
}
