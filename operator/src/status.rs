//! Pure status computation: from the spec, what observe.rs saw (Deployments and pods of each
//! revision) and the revision being applied, derive phase, replicas, model verification and
//! the Ready / ModelVerified / Progressing conditions. lastTransitionTime only moves when a
//! condition's status flips; `transitions` lists what changed, for Events.

use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::{
    DeepSeekDeployment, DeepSeekDeploymentStatus, HistoryEntry, ModelVerification,
    ModelVerificationState, Phase, RevisionRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Reason of Progressing while pods of the newest revision are not all ready.
pub const REASON_ROLLING_OUT: &str = "RevisionRollingOut";
/// Reason of Progressing once the newest revision is fully ready.
pub const REASON_ROLLOUT_COMPLETE: &str = "RolloutComplete";

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentObservation {
    pub name: String,
    pub revision: Option<String>,
    pub replicas: i32,
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

fn condition(
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

/// Model verification of `revision` from its pods: any failure wins, then any success.
pub fn model_verification(revision: &str, pods: &[PodObservation]) -> ModelVerification {
    let mine: Vec<&PodObservation> = pods
        .iter()
        .filter(|p| p.revision.as_deref() == Some(revision))
        .collect();
    let failed = mine.iter().find_map(|p| match &p.init {
        InitState::Failed {
            container,
            reason,
            message,
        } => Some(format!(
            "pod {}: init container {container} failed ({reason}): {message}",
            p.name
        )),
        _ => None,
    });
    let (state, message) = match failed {
        Some(m) => (ModelVerificationState::Failed, Some(m)),
        None if mine.iter().any(|p| p.init == InitState::Succeeded) => {
            (ModelVerificationState::Verified, None)
        }
        None => (ModelVerificationState::Pending, None),
    };
    ModelVerification {
        state,
        revision: Some(revision.to_string()),
        message,
    }
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

/// Status after applying `revision`'s children, from what is observed. The revision becomes
/// the stable (serving) one at once when nothing serves yet, otherwise only once all its
/// replicas are ready; until then it is reported as the canary and the old one keeps serving.
pub fn compute(
    dsd: &DeepSeekDeployment,
    revision: &RevisionRef,
    observed: &Observed,
    now: &Time,
) -> DeepSeekDeploymentStatus {
    let mut st = previous(dsd);
    let gen = dsd.metadata.generation;
    let desired = dsd.spec.replicas;
    let current_ready = ready_of(observed, &revision.hash);
    let serving_before = st.stable_revision.clone();
    let promote = serving_before
        .as_ref()
        .is_none_or(|s| s.hash == revision.hash)
        || current_ready >= desired;
    if promote {
        record_history(&mut st, dsd, revision, now);
        st.stable_revision = Some(revision.clone());
        st.canary_revision = None;
    } else {
        st.canary_revision = Some(revision.clone());
    }
    let stable_hash = st
        .stable_revision
        .as_ref()
        .map(|s| s.hash.clone())
        .unwrap_or_default();
    let ready = ready_of(observed, &stable_hash);
    let all_ready = ready >= desired && promote;
    let was_serving =
        serving_before.is_some_and(|s| s.hash == stable_hash) && st.phase == Some(Phase::Healthy);
    let verification = model_verification(&revision.hash, &observed.pods);
    (st.canary_weight, st.current_step, st.step_count) = (None, None, None);
    st.replicas = Some(desired);
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
    let ready_cond = if ready >= desired {
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
    let progress_msg = format!(
        "{current_ready}/{desired} replicas of revision {} ready",
        revision.hash
    );
    let progressing = match (all_ready, fetch_failed) {
        (true, _) => condition(
            ct::PROGRESSING,
            "False",
            REASON_ROLLOUT_COMPLETE,
            progress_msg,
            gen,
            now,
        ),
        (false, true) => condition(
            ct::PROGRESSING,
            "False",
            reasons::MODEL_FETCH_FAILED,
            v_message,
            gen,
            now,
        ),
        (false, false) => condition(
            ct::PROGRESSING,
            "True",
            REASON_ROLLING_OUT,
            progress_msg,
            gen,
            now,
        ),
    };
    set_condition(&mut st.conditions, progressing);

    st.phase = Some(match () {
        _ if all_ready => Phase::Healthy,
        _ if fetch_failed && ready < desired => Phase::Failed,
        _ if was_serving && ready < desired => Phase::Degraded,
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

/// When the serving revision changes, the old one joins the history (newest first).
fn record_history(
    st: &mut DeepSeekDeploymentStatus,
    dsd: &DeepSeekDeployment,
    revision: &RevisionRef,
    now: &Time,
) {
    let Some(old) = st
        .stable_revision
        .clone()
        .filter(|s| s.hash != revision.hash)
    else {
        return;
    };
    st.history
        .retain(|h| h.hash != old.hash && h.hash != revision.hash);
    st.history.insert(
        0,
        HistoryEntry {
            hash: old.hash,
            model_digest: old.model_digest,
            image: old.image,
            promoted_at: Some(now.clone()),
        },
    );
    let limit = usize::try_from(dsd.spec.rollout.revision_history_limit).unwrap_or(3);
    st.history.truncate(limit);
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
