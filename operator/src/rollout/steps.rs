//! One step of a running canary: wait for the replicas the step's weight needs (rolling back
//! after `progressDeadlineSeconds`), set the weight, judge the analysis window (roll back on a
//! failure as soon as `minRequests` are in, advance once the pause is over), and promote after
//! the last step once the canary has all its replicas.
//!
//! Status strings written here never carry changing numbers: a status write wakes the
//! controller again, so numbers go to Events and `lastAnalysis`, written on judgement only.

use std::time::Duration;

use deepseek_crds::duration::parse_duration;
use deepseek_crds::{AnalysisResult, DeepSeekDeploymentSpec, RolloutStep};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::analysis::{self, Verdict};
use super::{needed_replicas, reasons, Decision, Observed};

/// Time from `since` to `now` (zero if the clock went backwards).
fn elapsed(since: &Time, now: &Time) -> Duration {
    Duration::try_from(now.0.duration_since(since.0)).unwrap_or(Duration::ZERO)
}

/// 0-based index of the current step; `count` means "all steps passed: promote".
fn index(d: &Decision) -> usize {
    let count = usize::try_from(d.step_count).unwrap_or(0);
    if d.state.manual_rollback {
        return count;
    }
    let step = usize::try_from(d.step.unwrap_or(1)).unwrap_or(1);
    step.clamp(1, count + 1) - 1
}

/// Replicas the canary should have now.
pub(super) fn canary_replicas(d: &Decision, spec: &DeepSeekDeploymentSpec) -> i32 {
    match spec.rollout.steps.get(index(d)) {
        Some(step) => needed_replicas(spec.replicas, step.weight),
        None => spec.replicas,
    }
}

pub(super) fn progress(
    d: &mut Decision,
    spec: &DeepSeekDeploymentSpec,
    observed: &Observed,
    now: &Time,
) {
    let Some(canary) = d.canary.clone() else {
        return;
    };
    let ready = observed.ready_of(&canary.hash);
    let idx = index(d);
    d.step = Some(i32::try_from(idx + 1).unwrap_or(i32::MAX));
    let Some(step) = spec.rollout.steps.get(idx) else {
        if ready >= spec.replicas {
            d.promote(spec, now);
        } else {
            wait_for_replicas(d, spec, ready, spec.replicas, now);
        }
        return;
    };
    if d.state.step_started_at.is_none() {
        let need = needed_replicas(spec.replicas, step.weight);
        if ready < need {
            wait_for_replicas(d, spec, ready, need, now);
            return;
        }
        set_weight(d, step, idx, ready, observed, now);
        return;
    }
    analyse(d, spec, step, idx, observed, now);
}

fn set_weight(
    d: &mut Decision,
    step: &RolloutStep,
    idx: usize,
    ready: i32,
    observed: &Observed,
    now: &Time,
) {
    let hash = d
        .canary
        .as_ref()
        .map(|c| c.hash.clone())
        .unwrap_or_default();
    d.weight = step.weight;
    d.state.step_started_at = Some(now.clone());
    d.state.waiting_since = None;
    // Without figures now, the baseline is taken at the first reading.
    d.state.baseline = observed
        .stats
        .as_ref()
        .map(|s| analysis::baseline(&hash, s));
    let message = format!(
        "step {}/{}: canary {hash} weight {}% ({ready} ready replicas), pause {}",
        idx + 1,
        d.step_count,
        step.weight,
        step.pause.as_deref().unwrap_or("none")
    );
    d.progress = Some(message.clone());
    d.event(reasons::WEIGHT_SET, message);
}

fn wait_for_replicas(
    d: &mut Decision,
    spec: &DeepSeekDeploymentSpec,
    ready: i32,
    need: i32,
    now: &Time,
) {
    let since = d
        .state
        .waiting_since
        .get_or_insert_with(|| now.clone())
        .clone();
    let waited = elapsed(&since, now);
    let deadline =
        Duration::from_secs(u64::try_from(spec.rollout.progress_deadline_seconds).unwrap_or(0));
    let what = if d.state.manual_rollback {
        "rollback target"
    } else {
        "canary"
    };
    if waited > deadline {
        let message = format!(
            "{what} had {ready}/{need} ready replicas after {}s (progressDeadlineSeconds {})",
            waited.as_secs(),
            deadline.as_secs()
        );
        d.roll_back(reasons::DEADLINE_EXCEEDED, message, now);
        return;
    }
    d.progress = Some(format!(
        "step {}/{}: waiting for {need} ready {what} replicas",
        d.step.unwrap_or(1),
        d.step_count
    ));
    d.requeue_after = Some(deadline.saturating_sub(waited) + Duration::from_secs(1));
}

fn analyse(
    d: &mut Decision,
    spec: &DeepSeekDeploymentSpec,
    step: &RolloutStep,
    idx: usize,
    observed: &Observed,
    now: &Time,
) {
    let hash = d
        .canary
        .as_ref()
        .map(|c| c.hash.clone())
        .unwrap_or_default();
    let at = format!("step {}/{} at weight {}%", idx + 1, d.step_count, d.weight);
    let Some(stats) = &observed.stats else {
        d.progress = Some(format!("{at}: router figures unavailable; waiting"));
        return;
    };
    let Some(base) = d.state.baseline.clone().filter(|b| b.revision == hash) else {
        d.state.baseline = Some(analysis::baseline(&hash, stats));
        d.progress = Some(format!("{at}: analysis started"));
        return;
    };
    let current = stats.get(&hash).cloned().unwrap_or_default();
    let w = analysis::window(&current, &base);
    let verdict = analysis::judge(&w, &spec.rollout.analysis);
    let result = AnalysisResult {
        revision: hash.clone(),
        requests: w.requests,
        errors: w.errors,
        error_rate: w.error_rate,
        p99_latency_ms: w.p99_ms,
        passed: verdict == Verdict::Pass,
        step: d.step,
        time: Some(now.clone()),
    };
    match verdict {
        Verdict::Fail(why) => {
            d.analysis = Some(result);
            d.roll_back(reasons::ANALYSIS_FAILED, format!("{at}: {why}"), now);
        }
        Verdict::Inconclusive => {
            d.progress = Some(format!(
                "{at}: waiting for minRequests {} before judging",
                spec.rollout.analysis.min_requests
            ));
        }
        Verdict::Pass => {
            let pause = step
                .pause
                .as_deref()
                .and_then(|p| parse_duration(p).ok())
                .unwrap_or(Duration::ZERO);
            let started = d
                .state
                .step_started_at
                .clone()
                .unwrap_or_else(|| now.clone());
            let held = elapsed(&started, now);
            if held < pause {
                d.progress = Some(format!(
                    "{at}: analysis passing; pausing {}",
                    step.pause.as_deref().unwrap_or("0s")
                ));
                d.requeue_after = Some(pause - held);
                return;
            }
            d.analysis = Some(result);
            d.event(
                reasons::ANALYSIS_PASSED,
                format!(
                    "{at} passed: {} requests, {} errors (rate {:.4}), p99 {:.0} ms",
                    w.requests, w.errors, w.error_rate, w.p99_ms
                ),
            );
            d.step = Some(i32::try_from(idx + 2).unwrap_or(i32::MAX));
            d.state.step_started_at = None;
            d.state.baseline = None;
            d.state.waiting_since = Some(now.clone());
            d.progress = Some(format!("{at} passed"));
        }
    }
}
