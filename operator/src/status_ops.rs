//! Pure status of the operational children, layered on what [`crate::status::compute`] produced:
//! ready replicas per zone with the `ZonesAvailable` condition (a zone without a ready replica of
//! the stable revision also turns a Healthy phase into Degraded), the `MonitoringAvailable`
//! condition (monitoring CRDs served or not), and the last successful backup.

use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::{
    BackupRecord, DeepSeekDeployment, DeepSeekDeploymentStatus, Phase, ZoneStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::status::set_condition;

/// A runtime pod as the zone accounting needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonedPod {
    pub revision: Option<String>,
    /// Zone of its node; `None` until scheduled (or a node without the zone label).
    pub zone: Option<String>,
    pub ready: bool,
}

/// Whether the monitoring children could be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitoringState {
    /// PrometheusRule and PodMonitor are applied.
    Applied,
    /// `spec.monitoring.enabled` is false.
    Disabled,
    /// The cluster does not serve these monitoring.coreos.com kinds.
    CrdsMissing(Vec<String>),
}

/// What the operational observation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsObserved {
    pub pods: Vec<ZonedPod>,
    pub monitoring: MonitoringState,
    /// `status.lastSuccessfulTime` of the backup CronJob.
    pub last_backup: Option<Time>,
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    gen: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: gen,
        last_transition_time: now.clone(),
    }
}

/// Ready replicas of `stable` per zone of `zones`, in the spec's order.
pub fn zone_counts(zones: &[String], stable: &str, pods: &[ZonedPod]) -> Vec<ZoneStatus> {
    zones
        .iter()
        .map(|zone| ZoneStatus {
            zone: zone.clone(),
            ready_replicas: pods
                .iter()
                .filter(|p| p.ready && p.revision.as_deref() == Some(stable))
                .filter(|p| p.zone.as_deref() == Some(zone.as_str()))
                .count()
                .try_into()
                .unwrap_or(i32::MAX),
        })
        .collect()
}

fn apply_zones(
    st: &mut DeepSeekDeploymentStatus,
    dsd: &DeepSeekDeployment,
    pods: &[ZonedPod],
    now: &Time,
) {
    let zones = &dsd.spec.placement.zones;
    if zones.is_empty() {
        st.zones.clear();
        st.conditions.retain(|c| c.type_ != ct::ZONES_AVAILABLE);
        return;
    }
    let stable = st
        .stable_revision
        .as_ref()
        .map(|r| r.hash.clone())
        .unwrap_or_default();
    st.zones = zone_counts(zones, &stable, pods);
    let empty: Vec<&str> = st
        .zones
        .iter()
        .filter(|z| z.ready_replicas == 0)
        .map(|z| z.zone.as_str())
        .collect();
    let gen = dsd.metadata.generation;
    let cond = if empty.is_empty() {
        condition(
            ct::ZONES_AVAILABLE,
            "True",
            reasons::ALL_ZONES_SERVING,
            format!("every zone has a ready replica of revision {stable}"),
            gen,
            now,
        )
    } else {
        condition(
            ct::ZONES_AVAILABLE,
            "False",
            reasons::ZONE_WITHOUT_READY_REPLICAS,
            format!(
                "no ready replica of revision {stable} in zone(s) {}",
                empty.join(", ")
            ),
            gen,
            now,
        )
    };
    // Serving from fewer zones than asked is reduced resilience, not health. A stable revision
    // short of replicas reads Progressing; with no canary running, that is this degradation too.
    let settling = st.phase == Some(Phase::Progressing) && st.canary_revision.is_none();
    if !empty.is_empty() && (st.phase == Some(Phase::Healthy) || settling) {
        st.phase = Some(Phase::Degraded);
    }
    set_condition(&mut st.conditions, cond);
}

fn apply_monitoring(
    st: &mut DeepSeekDeploymentStatus,
    gen: Option<i64>,
    state: &MonitoringState,
    now: &Time,
) {
    let cond = match state {
        MonitoringState::Applied => condition(ct::MONITORING, "True", reasons::MONITORING_APPLIED,
            "PrometheusRule, PodMonitor and dashboard applied".into(), gen, now),
        MonitoringState::Disabled => condition(ct::MONITORING, "False", reasons::MONITORING_DISABLED,
            "spec.monitoring.enabled is false".into(), gen, now),
        MonitoringState::CrdsMissing(kinds) => condition(ct::MONITORING, "False", reasons::MONITORING_CRDS_MISSING,
            format!("the cluster does not serve monitoring.coreos.com/v1 {}: install the Prometheus operator for alerts and scraping; the deployment itself is unaffected", kinds.join(", ")), gen, now),
    };
    set_condition(&mut st.conditions, cond);
}

/// Adds zones, monitoring and backup to a computed status.
pub fn apply(
    st: &mut DeepSeekDeploymentStatus,
    dsd: &DeepSeekDeployment,
    observed: &OpsObserved,
    now: &Time,
) {
    apply_zones(st, dsd, &observed.pods, now);
    apply_monitoring(st, dsd.metadata.generation, &observed.monitoring, now);
    match (&dsd.spec.backup, &observed.last_backup) {
        (None, _) => st.last_backup = None,
        (Some(_), Some(time)) => {
            st.last_backup = Some(BackupRecord {
                time: Some(time.clone()),
                // What the backup copied and verified: the files of the spec, by their digests.
                digest: crate::desired::naming::model_digest(&dsd.spec.model),
                // The generation's name is only known inside the backup; the CronJob reports times.
                generation: String::new(),
            });
        }
        (Some(_), None) => {}
    }
}

#[cfg(test)]
#[path = "status_ops_tests.rs"]
mod tests;
