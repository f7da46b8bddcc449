//! Pure status computation: from the spec, what observe.rs saw (Deployments and pods of each
//! revision) and the revision being applied, derive phase, replicas, model verification and
//! the Ready / ModelVerified / Progressing conditions. lastTransitionTime only moves when a
//! condition's status flips; `transitions` lists what changed, for Events.

use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::{
    DeepSeekDeployment, DeepSeekDeploymentStatus, ModelVerificationState, Phase, RevisionRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::rollout::{self, Decision};

pub use crate::status_verification::model_verification;

/// Reason of Progressing while pods of the newest revision are not all ready.
pub const REASON_ROLLING_OUT: &str = "RevisionRollingOut";
/// Reason of Progressing once the newest revision is fully ready.
pub const REASON_ROLLOUT_COMPLETE: &str = "RolloutComplete";
/// Reason of Progressing while `spec.rollout.paused` holds the canary.
pub const REASON_PAUSED: &str = "RolloutPaused";

/// A problem with a spec that passed the schema: the field path and a message naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
}

/// What an init container (model fetch + SHA256 verification) reported for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitState {
    Running,
    Succeeded,
    /// `reason` and `message` as the pod reports them (terminated reason, termination message).
    Failed {
        container: String,
        reason: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodObservation {
    pub name: String,
    pub revision: Option<String>,
    pub ready: bool,
    pub init: InitState,
    /// Why the kubelet cannot create a container (`CreateContainerConfigError`: a referenced
    /// Secret or key is missing), as `pod NAME: MESSAGE`.
    pub config_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentObservation {
    pub name: String,
    pub revision: Option<String>,
    /// Desired (`spec.replicas`).
    pub replicas: i32,
    /// Pods that exist (`status.replicas`).
    pub current_replicas: i32,
    pub ready_replicas: i32,
}

/// What exists in the cluster for one DeepSeekDeployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub deployments: Vec<DeploymentObservation>,
    pub pods: Vec<PodObservation>,
}

/// One condition change, for an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

pub(crate) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// Replaces or adds `new`, keeping the old lastTransitionTime when the status is unchanged.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Conditions whose status or reason differ from before.
pub fn transitions(old: &[Condition], new: &[Condition]) -> Vec<Transition> {
    new.iter()
        .filter(|n| {
            !old.iter()
                .any(|o| o.type_ == n.type_ && o.status == n.status && o.reason == n.reason)
        })
        .map(|n| Transition {
            type_: n.type_.clone(),
            status: n.status.clone(),
            reason: n.reason.clone(),
            message: n.message.clone(),
        })
        .collect()
}

fn previous(dsd: &DeepSeekDeployment) -> DeepSeekDeploymentStatus {
    dsd.status.clone().unwrap_or_default()
}

/// Status for a spec that is structurally valid but wrong: Ready=False/InvalidSpec naming the
/// field(s); everything describing the running children is kept as it was.
pub fn invalid_spec(
    dsd: &DeepSeekDeployment,
    problems: &[SpecProblem],
    now: &Time,
) -> DeepSeekDeploymentStatus {
    let mut st = previous(dsd);
    let gen = dsd.metadata.generation;
    let message = problems
        .iter()
        .map(|p| p.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    set_condition(
        &mut st.conditions,
        condition(
            ct::READY,
            "False",
            reasons::INVALID_SPEC,
            message.clone(),
            gen,
            now,
        ),
    );
    set_condition(
        &mut st.conditions,
        condition(
            ct::PROGRESSING,
            "False",
            reasons::INVALID_SPEC,
            message,
            gen,
            now,
        ),
    );
    st.observed_generation = gen;
    if st.stable_revision.is_none() {
        st.phase = Some(Phase::Failed);
    }
    st.refresh_display();
    st
}

/// Ready replicas of one revision's Deployments.
fn ready_of(observed: &Observed, hash: &str) -> i32 {
    observed
        .deployments
        .iter()
        .filter(|d| d.revision.as_deref() == Some(hash))
        .map(|d| d.ready_replicas)
        .sum()
}

/// Existing pods of one revision's Deployments.
fn current_of(observed: &Observed, hash: &str) -> i32 {
    observed
        .deployments
        .iter()
        .filter(|d| d.revision.as_deref() == Some(hash))
        .map(|d| d.current_replicas)
        .sum()
}

/// The scale subresource's selector: every runtime pod of the resource, as a label query.
pub fn pod_selector(dsd_name: &str) -> String {
    crate::desired::naming::runtime_selector(dsd_name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the rollout state machine sees of `observed` (ready replicas per revision).
pub fn rollout_observed(
    revision: &RevisionRef,
    observed: &Observed,
    stats: Option<rollout::Stats>,
) -> rollout::Observed {
    let mut ready = std::collections::BTreeMap::new();
    for d in &observed.deployments {
        if let Some(hash) = &d.revision {
            *ready.entry(hash.clone()).or_insert(0) += d.ready_replicas;
        }
    }
    rollout::Observed {
        desired: revision.clone(),
        ready,
        stats,
    }
}

/// Status after applying `revision`'s children, deciding the rollout without router figures
/// (a spec without steps needs none: the new revision is promoted once all its replicas are ready).
pub fn compute(
    dsd: &DeepSeekDeployment,
    revision: &RevisionRef,
    observed: &Observed,
    now: &Time,
) -> DeepSeekDeploymentStatus {
    let input = rollout_observed(revision, observed, None);
    let decision = rollout::decide(&dsd.spec, &previous(dsd), &input, now);
    from_decision(dsd, revision, observed, &decision, now)
}

/// Status from the rollout decision of this round and what is observed.
pub fn from_decision(
    dsd: &DeepSeekDeployment,
    revision: &RevisionRef,
    observed: &Observed,
    decision: &Decision,
    now: &Time,
) -> DeepSeekDeploymentStatus {
    let mut st = previous(dsd);
    let gen = dsd.metadata.generation;
    let desired = dsd.spec.replicas;
    let current_ready = ready_of(observed, &revision.hash);
    let serving_before = st.stable_revision.clone();
    decision.write_to(&mut st);
    let stable_hash = st
        .stable_revision
        .as_ref()
        .map(|s| s.hash.clone())
        .unwrap_or_default();
    let ready = ready_of(observed, &stable_hash);
    let all_ready = ready >= desired && decision.canary.is_none();
    let was_serving =
        serving_before.is_some_and(|s| s.hash == stable_hash) && st.phase == Some(Phase::Healthy);
    let verification = model_verification(&revision.hash, &observed.pods);
    // Observed, not desired: the scale subresource (and an HPA) reads this as what runs now.
    st.replicas = Some(current_of(observed, &stable_hash));
    st.selector = Some(pod_selector(
        dsd.metadata.name.as_deref().unwrap_or_default(),
    ));
    st.ready_replicas = Some(ready);
    st.observed_generation = gen;

    let (v_status, v_reason, v_message) = match verification.state {
        ModelVerificationState::Verified => (
            "True",
            reasons::MODEL_VERIFIED,
            "every model file matched its SHA256".to_string(),
        ),
        ModelVerificationState::Failed => (
            "False",
            reasons::MODEL_FETCH_FAILED,
            verification.message.clone().unwrap_or_default(),
        ),
        ModelVerificationState::Pending => (
            "Unknown",
            reasons::MODEL_VERIFICATION_PENDING,
            "waiting for the model fetch init container".to_string(),
        ),
    };
    let fetch_failed = verification.state == ModelVerificationState::Failed;
    set_condition(
        &mut st.conditions,
        condition(
            ct::MODEL_VERIFIED,
            v_status,
            v_reason,
            v_message.clone(),
            gen,
            now,
        ),
    );

    let ready_msg = format!("{ready}/{desired} replicas of revision {stable_hash} ready");
    // A pod that cannot start for a missing Secret (a router's Redis URL, say) makes the
    // resource not ready even while the runtime replicas are: the chat path needs every part.
    let config_error = observed.pods.iter().find_map(|p| p.config_error.clone());
    let ready_cond = if let Some(error) = config_error {
        condition(
            ct::READY,
            "False",
            reasons::POD_CONFIG_ERROR,
            error,
            gen,
            now,
        )
    } else if ready >= desired {
        condition(
            ct::READY,
            "True",
            reasons::ALL_REPLICAS_READY,
            ready_msg,
            gen,
            now,
        )
    } else if fetch_failed {
        condition(
            ct::READY,
            "False",
            reasons::MODEL_FETCH_FAILED,
            v_message.clone(),
            gen,
            now,
        )
    } else {
        condition(
            ct::READY,
            "False",
            reasons::REPLICAS_NOT_READY,
            ready_msg,
            gen,
            now,
        )
    };
    set_condition(&mut st.conditions, ready_cond);
    let progress_msg = decision.progress.clone().unwrap_or_else(|| {
        format!(
            "{current_ready}/{desired} replicas of revision {} ready",
            revision.hash
        )
    });
    let progressing = match (all_ready, fetch_failed, decision.paused) {
        (_, _, true) => condition(
            ct::PROGRESSING,
            "Unknown",
            REASON_PAUSED,
            progress_msg,
            gen,
            now,
        ),
        (true, _, _) => condition(
            ct::PROGRESSING,
            "False",
            REASON_ROLLOUT_COMPLETE,
            progress_msg,
            gen,
            now,
        ),
        (false, true, _) => condition(
            ct::PROGRESSING,
            "False",
            reasons::MODEL_FETCH_FAILED,
            v_message,
            gen,
            now,
        ),
        (false, false, _) => condition(
            ct::PROGRESSING,
            "True",
            REASON_ROLLING_OUT,
            progress_msg,
            gen,
            now,
        ),
    };
    set_condition(&mut st.conditions, progressing);
    set_condition(
        &mut st.conditions,
        rolled_back_condition(decision, gen, now),
    );

    st.phase = Some(match () {
        _ if decision.paused => Phase::Paused,
        _ if fetch_failed && ready < desired => Phase::Failed,
        _ if decision.canary.is_some() => Phase::Progressing,
        _ if was_serving && ready < desired => Phase::Degraded,
        _ if decision.rolled_back().is_some() => Phase::RolledBack,
        _ if all_ready => Phase::Healthy,
        _ if observed.deployments.is_empty() => Phase::Pending,
        _ => Phase::Progressing,
    });
    st.model_verification = Some(verification);
    st.refresh_display();
    st
}

/// Revisions whose Deployments must be kept besides the desired ones: the one still serving
/// while a new revision is not ready yet.
pub fn kept_revisions(dsd: &DeepSeekDeployment, revision: &RevisionRef) -> Vec<String> {
    dsd.status
        .as_ref()
        .and_then(|s| s.stable_revision.as_ref())
        .filter(|s| s.hash != revision.hash)
        .map(|s| vec![s.hash.clone()])
        .unwrap_or_default()
}

/// RolledBack: True with the rollback's reason and numbers while it holds, else False.
fn rolled_back_condition(decision: &Decision, gen: Option<i64>, now: &Time) -> Condition {
    match decision.rolled_back() {
        Some(r) => condition(
            ct::ROLLED_BACK,
            "True",
            &r.reason,
            format!("revision {}: {}", r.revision, r.message),
            gen,
            now,
        ),
        None => condition(
            ct::ROLLED_BACK,
            "False",
            rollout::reasons::NOT_ROLLED_BACK,
            "no rollback since the last rollout started".into(),
            gen,
            now,
        ),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
