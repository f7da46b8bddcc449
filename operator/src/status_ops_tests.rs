use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus, Phase, RevisionRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;

fn dsd(zones: &[&str], backup: bool) -> DeepSeekDeployment {
    let mut spec = json!({
        "model": {
            "name": "m",
            "source": {"url": {"url": "http://models.local/m"}},
            "files": [{"path": "m.gguf", "sha256": "ab".repeat(32)}],
            "format": "gguf"
        },
        "replicas": 3,
        "placement": {"zones": zones},
    });
    if backup {
        spec["backup"] =
            json!({"schedule": "0 3 * * *", "destination": {"pvc": {"claimName": "b"}}});
    }
    serde_json::from_value(json!({
        "apiVersion": deepseek_crds::API_VERSION, "kind": deepseek_crds::KIND,
        "metadata": {"name": "chat", "namespace": "ns", "uid": "u", "generation": 2},
        "spec": spec,
    }))
    .expect("fixture is a valid DeepSeekDeployment")
}

fn healthy() -> DeepSeekDeploymentStatus {
    DeepSeekDeploymentStatus {
        phase: Some(Phase::Healthy),
        stable_revision: Some(RevisionRef {
            hash: "aaaaaaaaaa".into(),
            ..RevisionRef::default()
        }),
        ..DeepSeekDeploymentStatus::default()
    }
}

fn pod(zone: &str, revision: &str, ready: bool) -> ZonedPod {
    ZonedPod {
        revision: Some(revision.into()),
        zone: Some(zone.into()),
        ready,
    }
}

fn observed(pods: Vec<ZonedPod>) -> OpsObserved {
    OpsObserved {
        pods,
        monitoring: MonitoringState::Applied,
        last_backup: None,
    }
}

fn now() -> Time {
    Time(Timestamp::UNIX_EPOCH)
}

#[test]
fn counts_only_ready_pods_of_the_stable_revision_per_zone() {
    let zones = vec!["a".to_string(), "b".to_string()];
    let pods = [
        pod("a", "aaaaaaaaaa", true),
        pod("a", "aaaaaaaaaa", true),
        pod("a", "bbbbbbbbbb", true),
        pod("b", "aaaaaaaaaa", false),
    ];
    let counts = zone_counts(&zones, "aaaaaaaaaa", &pods);
    assert_eq!(
        counts
            .iter()
            .map(|z| (z.zone.as_str(), z.ready_replicas))
            .collect::<Vec<_>>(),
        [("a", 2), ("b", 0)]
    );
}

#[test]
fn a_zone_without_ready_replicas_degrades_a_healthy_deployment() {
    let mut st = healthy();
    let pods = vec![pod("a", "aaaaaaaaaa", true), pod("b", "aaaaaaaaaa", true)];
    apply(
        &mut st,
        &dsd(&["a", "b", "c"], false),
        &observed(pods),
        &now(),
    );
    let c = st
        .condition(ct::ZONES_AVAILABLE)
        .expect("ZonesAvailable set");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::ZONE_WITHOUT_READY_REPLICAS)
    );
    assert!(c.message.contains("zone(s) c"), "{}", c.message);
    assert_eq!(st.phase, Some(Phase::Degraded));
    assert_eq!(st.zones.len(), 3);
}

#[test]
fn every_zone_serving_keeps_the_phase_and_reports_true() {
    let mut st = healthy();
    let pods = vec![pod("a", "aaaaaaaaaa", true), pod("b", "aaaaaaaaaa", true)];
    apply(&mut st, &dsd(&["a", "b"], false), &observed(pods), &now());
    let c = st
        .condition(ct::ZONES_AVAILABLE)
        .expect("ZonesAvailable set");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reasons::ALL_ZONES_SERVING)
    );
    assert_eq!(st.phase, Some(Phase::Healthy));
}

#[test]
fn without_zones_no_zone_status_or_condition_is_reported() {
    let mut st = healthy();
    st.zones = vec![deepseek_crds::ZoneStatus {
        zone: "old".into(),
        ready_replicas: 1,
    }];
    apply(&mut st, &dsd(&[], false), &observed(vec![]), &now());
    assert!(st.zones.is_empty());
    assert!(st.condition(ct::ZONES_AVAILABLE).is_none());
}

#[test]
fn missing_monitoring_crds_set_monitoring_available_false_naming_the_kinds() {
    let mut st = healthy();
    let mut obs = observed(vec![]);
    obs.monitoring =
        MonitoringState::CrdsMissing(vec!["PrometheusRule".into(), "PodMonitor".into()]);
    apply(&mut st, &dsd(&[], false), &obs, &now());
    let c = st
        .condition(ct::MONITORING)
        .expect("MonitoringAvailable set");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::MONITORING_CRDS_MISSING)
    );
    assert!(
        c.message.contains("PrometheusRule, PodMonitor"),
        "{}",
        c.message
    );
    assert_eq!(
        st.phase,
        Some(Phase::Healthy),
        "monitoring never degrades serving"
    );
}

#[test]
fn a_successful_backup_is_recorded_with_the_model_digest() {
    let mut st = healthy();
    let mut obs = observed(vec![]);
    obs.last_backup = Some(now());
    let d = dsd(&[], true);
    apply(&mut st, &d, &obs, &now());
    let record = st.last_backup.expect("lastBackup set");
    assert_eq!(record.time, Some(now()));
    assert_eq!(
        record.digest,
        crate::desired::naming::model_digest(&d.spec.model)
    );
}
