//! The rollout state machine, pure: `decide(spec, status, observed, now) -> Decision`.
//!
//! From the spec, the previous status, what exists (ready replicas per revision, the router's
//! figures) and the time, it decides which revision is stable, which one is the canary (at most
//! one: never a third live revision), the canary's weight and step, the replicas of every kept
//! revision, the history, and the Events describing what it did. `reconcile` applies the
//! decision; `status` reports it. No client, no clock: table-driven tests cover every transition.

pub mod analysis;
pub mod history;
mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use deepseek_crds::{
    AnalysisResult, DeepSeekDeploymentSpec, DeepSeekDeploymentStatus, HistoryEntry, RevisionRef,
    RollbackRecord, RolloutState,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use analysis::{RevisionStats, Stats};

/// Event and condition reasons of the rollout.
pub mod reasons {
    pub const INITIAL_REVISION: &str = "InitialRevision";
    pub const CANARY_STARTED: &str = "CanaryStarted";
    pub const CANARY_REPLACED: &str = "CanaryReplaced";
    pub const CANARY_ABORTED: &str = "CanaryAborted";
    pub const WEIGHT_SET: &str = "CanaryWeightSet";
    pub const WAITING_FOR_REPLICAS: &str = "WaitingForCanaryReplicas";
    pub const ANALYSIS_PASSED: &str = "AnalysisPassed";
    pub const ANALYSIS_FAILED: &str = "AnalysisFailed";
    pub const ANALYSIS_WAITING: &str = "AnalysisWaiting";
    pub const STATS_UNAVAILABLE: &str = "RouterStatsUnavailable";
    pub const PROMOTED: &str = "Promoted";
    pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    pub const MANUAL_ROLLBACK: &str = "ManualRollback";
    pub const ROLLBACK_STARTED: &str = "ManualRollbackStarted";
    pub const ROLLBACK_TARGET_UNKNOWN: &str = "RollbackTargetUnknown";
    pub const PAUSED: &str = "RolloutPaused";
    pub const RESUMED: &str = "RolloutResumed";
    pub const HELD: &str = "RevisionHeld";
    pub const STABLE_UNAVAILABLE: &str = "StableUnavailable";
    pub const NOT_ROLLED_BACK: &str = "NoRollback";
}

/// What the state machine needs to know about the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The revision the spec describes now.
    pub desired: RevisionRef,
    /// Ready replicas per revision hash (absent: no Deployment).
    pub ready: BTreeMap<String, i32>,
    /// The routers' cumulative figures; `None` when they could not all be read.
    pub stats: Option<Stats>,
}

impl Observed {
    fn ready_of(&self, hash: &str) -> i32 {
        self.ready.get(hash).copied().unwrap_or(0)
    }
}

/// One Event to publish, with its numbers in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutEvent {
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
}

/// Everything the reconciler applies and the status reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub stable: Option<RevisionRef>,
    pub canary: Option<RevisionRef>,
    /// Percent of requests the router sends to the canary (0 without one).
    pub weight: i32,
    /// 1-based step of the canary; `step_count + 1` while it is scaled up for promotion.
    pub step: Option<i32>,
    pub step_count: i32,
    /// Held by `spec.rollout.paused`.
    pub paused: bool,
    pub history: Vec<HistoryEntry>,
    pub state: RolloutState,
    /// The analysis made this round, if any.
    pub analysis: Option<AnalysisResult>,
    /// Desired replicas of every revision whose Deployment is kept (stable, canary, history,
    /// rolled back); revisions not listed are pruned.
    pub replicas: BTreeMap<String, i32>,
    /// What the Progressing condition says while a canary runs (or why it waits).
    pub progress: Option<String>,
    pub events: Vec<RolloutEvent>,
    /// When the next decision is due at the latest (a pause ending).
    pub requeue_after: Option<Duration>,
}

impl Decision {
    fn carry(spec: &DeepSeekDeploymentSpec, status: &DeepSeekDeploymentStatus) -> Self {
        Self {
            stable: status.stable_revision.clone(),
            canary: status.canary_revision.clone(),
            weight: status.canary_weight.unwrap_or(0),
            step: status.current_step,
            step_count: i32::try_from(spec.rollout.steps.len()).unwrap_or(i32::MAX),
            paused: false,
            history: status.history.clone(),
            state: status.rollout.clone().unwrap_or_default(),
            analysis: None,
            replicas: BTreeMap::new(),
            progress: None,
            events: Vec::new(),
            requeue_after: None,
        }
    }

    fn event(&mut self, reason: &'static str, message: String) {
        self.events.push(RolloutEvent {
            reason,
            message,
            warning: false,
        });
    }

    fn warn(&mut self, reason: &'static str, message: String) {
        self.events.push(RolloutEvent {
            reason,
            message,
            warning: true,
        });
    }

    /// Writes the rollout fields of the status (revisions, weight, step, history, analysis,
    /// bookkeeping); conditions and phase are `status.rs`'s job.
    pub fn write_to(&self, st: &mut DeepSeekDeploymentStatus) {
        st.stable_revision = self.stable.clone();
        st.canary_revision = self.canary.clone();
        let canary = self.canary.is_some();
        st.canary_weight = canary.then_some(self.weight);
        // A manual rollback target walks no steps.
        let stepped = canary && !self.state.manual_rollback;
        st.current_step = self.step.filter(|_| stepped);
        st.step_count = stepped.then_some(self.step_count);
        st.history = self.history.clone();
        if let Some(a) = &self.analysis {
            st.last_analysis = Some(a.clone());
        }
        st.rollout = (self.state != RolloutState::default()).then(|| self.state.clone());
    }

    /// The record behind a True RolledBack condition.
    pub fn rolled_back(&self) -> Option<&RollbackRecord> {
        self.state.rolled_back.as_ref()
    }

    /// Revisions the router sends to, with their weights (stable first).
    pub fn routes(&self) -> Vec<(String, i32)> {
        let mut routes = Vec::new();
        if let Some(s) = &self.stable {
            routes.push((s.hash.clone(), 100 - self.weight));
        }
        if let Some(c) = &self.canary {
            routes.push((c.hash.clone(), self.weight));
        }
        routes
    }

    /// Ends the canary without promoting it: weight 0, scaled down, remembered as rolled back.
    fn roll_back(&mut self, reason: &'static str, message: String, now: &Time) {
        let Some(canary) = self.canary.take() else {
            return;
        };
        self.warn(
            reason,
            format!("rolled back revision {}: {message}", canary.hash),
        );
        self.state = RolloutState {
            rolled_back: Some(RollbackRecord {
                revision: canary.hash,
                reason: reason.to_string(),
                message,
                time: Some(now.clone()),
            }),
            ..RolloutState::default()
        };
        (self.weight, self.step) = (0, None);
    }

    /// Starts `revision` as the canary at step 1, weight 0 until it has the replicas step 1
    /// needs; a canary already running is dropped (it never becomes a third live revision).
    fn start_canary(&mut self, revision: RevisionRef, manual: bool, now: &Time) {
        if let Some(old) = self.canary.take() {
            self.event(
                reasons::CANARY_REPLACED,
                format!(
                    "canary {} (weight {}%) replaced by {}; it is scaled down",
                    old.hash, self.weight, revision.hash
                ),
            );
        }
        let (reason, what) = if manual {
            (reasons::ROLLBACK_STARTED, "rolling back to")
        } else {
            (reasons::CANARY_STARTED, "canary")
        };
        self.event(
            reason,
            format!(
                "{what} revision {} (image {})",
                revision.hash, revision.image
            ),
        );
        self.state = RolloutState {
            canary_started_at: Some(now.clone()),
            waiting_since: Some(now.clone()),
            manual_rollback: manual,
            ..RolloutState::default()
        };
        self.canary = Some(revision);
        (self.weight, self.step) = (0, Some(1));
    }

    /// Promotes the canary: it becomes stable, the old stable joins the (trimmed) history.
    fn promote(&mut self, spec: &DeepSeekDeploymentSpec, now: &Time) {
        let Some(canary) = self.canary.take() else {
            return;
        };
        let manual = self.state.manual_rollback;
        if let Some(old) = self.stable.take() {
            let limit = history::limit(spec.rollout.revision_history_limit);
            history::push(&mut self.history, &old, &canary.hash, now, limit);
            if manual {
                let message = format!(
                    "revision {} serves again; {} scaled down and kept in history",
                    canary.hash, old.hash
                );
                self.warn(reasons::MANUAL_ROLLBACK, message.clone());
                self.state.rolled_back = Some(RollbackRecord {
                    revision: old.hash.clone(),
                    reason: reasons::MANUAL_ROLLBACK.into(),
                    message,
                    time: Some(now.clone()),
                });
            } else {
                self.event(
                    reasons::PROMOTED,
                    format!(
                        "revision {} promoted to stable; {} scaled down and kept in history",
                        canary.hash, old.hash
                    ),
                );
            }
        }
        let rolled_back = self.state.rolled_back.take().filter(|_| manual);
        self.state = RolloutState {
            rolled_back,
            ..RolloutState::default()
        };
        self.stable = Some(canary);
        (self.weight, self.step) = (0, None);
    }
}

/// Replicas the canary needs to take `weight` percent of traffic: its share of the stable
/// replica count, rounded up, at least one (and never more than `full`).
pub fn needed_replicas(full: i32, weight: i32) -> i32 {
    if full <= 0 {
        return 0;
    }
    let share = (i64::from(full) * i64::from(weight) + 99) / 100;
    i32::try_from(share).unwrap_or(full).clamp(1, full)
}

/// The whole decision for one reconciliation.
pub fn decide(
    spec: &DeepSeekDeploymentSpec,
    status: &DeepSeekDeploymentStatus,
    observed: &Observed,
    now: &Time,
) -> Decision {
    let mut d = Decision::carry(spec, status);
    let desired = observed.desired.clone();
    let Some(stable) = d.stable.clone() else {
        d.event(
            reasons::INITIAL_REVISION,
            format!(
                "first revision {} (image {}) serves all traffic",
                desired.hash, desired.image
            ),
        );
        d.stable = Some(desired);
        (d.canary, d.weight, d.step) = (None, 0, None);
        finish(&mut d, spec, observed);
        return d;
    };
    choose_canary(&mut d, spec, &stable, &desired, now);
    if d.canary.is_some() {
        if spec.rollout.paused {
            d.paused = true;
            d.progress = Some(format!(
                "paused at step {}/{} with weight {}%",
                d.step.unwrap_or(1),
                d.step_count,
                d.weight
            ));
            if status.phase != Some(deepseek_crds::Phase::Paused) {
                d.event(reasons::PAUSED, d.progress.clone().unwrap_or_default());
            }
        } else {
            if status.phase == Some(deepseek_crds::Phase::Paused) {
                d.event(reasons::RESUMED, "rollout resumed".into());
            }
            steps::progress(&mut d, spec, observed, now);
        }
    }
    finish(&mut d, spec, observed);
    warn_if_stable_lost(&mut d, spec, status, observed);
    d
}

/// Which revision should be the canary now (starting, replacing or dropping it).
fn choose_canary(
    d: &mut Decision,
    spec: &DeepSeekDeploymentSpec,
    stable: &RevisionRef,
    desired: &RevisionRef,
    now: &Time,
) {
    let current = d.canary.as_ref().map(|c| c.hash.clone());
    if let Some(target) = spec.rollout.rollback_to.as_deref() {
        if target == stable.hash {
            // Pinned to the rollback target: the spec's revision waits until rollbackTo is cleared.
            drop_canary(d, "rollbackTo pins the stable revision");
            if desired.hash != stable.hash {
                d.progress = Some(format!(
                    "revision {} held: rollbackTo pins {}",
                    desired.hash, stable.hash
                ));
            }
            return;
        }
        if current.as_deref() == Some(target) && d.state.manual_rollback {
            return;
        }
        let failed_before = d
            .state
            .rolled_back
            .as_ref()
            .is_some_and(|r| r.revision == target && r.reason == reasons::DEADLINE_EXCEEDED);
        match history::find(&d.history, target) {
            Some(_) if failed_before => {}
            Some(entry) => return d.start_canary(entry, true, now),
            None => d.warn(
                reasons::ROLLBACK_TARGET_UNKNOWN,
                format!("rollbackTo {target} is not in the history; ignored"),
            ),
        }
    }
    if desired.hash == stable.hash {
        drop_canary(d, "the spec describes the stable revision again");
        return;
    }
    let held = d
        .state
        .rolled_back
        .as_ref()
        .is_some_and(|r| r.revision == desired.hash && r.reason != reasons::MANUAL_ROLLBACK);
    if held {
        drop_canary(d, "the spec describes a rolled-back revision");
        d.progress = Some(format!(
            "revision {} was rolled back; change the spec to roll out a new revision",
            desired.hash
        ));
        return;
    }
    if current.as_deref() != Some(desired.hash.as_str()) || d.state.manual_rollback {
        d.start_canary(desired.clone(), false, now);
    }
}

fn drop_canary(d: &mut Decision, why: &str) {
    if let Some(old) = d.canary.take() {
        d.event(
            reasons::CANARY_ABORTED,
            format!("canary {} stopped: {why}", old.hash),
        );
        d.state.canary_started_at = None;
        d.state.step_started_at = None;
        d.state.waiting_since = None;
        d.state.baseline = None;
        d.state.manual_rollback = false;
        (d.weight, d.step) = (0, None);
    }
}

/// Replicas of every kept revision, and a warning when the stable revision lost all of them.
fn finish(d: &mut Decision, spec: &DeepSeekDeploymentSpec, observed: &Observed) {
    let full = spec.replicas;
    for h in &d.history {
        d.replicas.insert(h.hash.clone(), 0);
    }
    if let Some(r) = &d.state.rolled_back {
        d.replicas.insert(r.revision.clone(), 0);
    }
    // The spec's revision always has a Deployment (scaled to zero while held).
    d.replicas.entry(observed.desired.hash.clone()).or_insert(0);
    if let Some(c) = &d.canary {
        d.replicas
            .insert(c.hash.clone(), steps::canary_replicas(d, spec));
    }
    if let Some(s) = &d.stable {
        d.replicas.insert(s.hash.clone(), full);
    }
}

/// A stable revision that had ready replicas and lost them all is reported (once, when it
/// happens), never silently replaced by the canary.
fn warn_if_stable_lost(
    d: &mut Decision,
    spec: &DeepSeekDeploymentSpec,
    status: &DeepSeekDeploymentStatus,
    observed: &Observed,
) {
    let Some(s) = d.stable.clone() else { return };
    let same = status
        .stable_revision
        .as_ref()
        .is_some_and(|p| p.hash == s.hash);
    let had = same && status.ready_replicas.unwrap_or(0) > 0;
    if spec.replicas > 0 && had && observed.ready_of(&s.hash) == 0 {
        d.warn(
            reasons::STABLE_UNAVAILABLE,
            format!(
                "stable revision {} lost all its ready replicas (0/{}); it is reported, not replaced",
                s.hash, spec.replicas
            ),
        );
    }
}

#[cfg(test)]
mod tests;
