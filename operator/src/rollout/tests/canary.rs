//! The automatic canary: steps and weights, analysis against the baseline, automatic
//! rollback, pauses and the progress deadline.

use super::*;

#[test]
fn the_first_revision_serves_all_traffic_at_once() {
    let mut sim = Sim::serving(two_steps(), A);
    let d = sim.round();
    assert_eq!(sim.stable(), Some(A));
    assert_eq!(sim.canary(), None);
    assert_eq!(d.routes(), vec![(A.to_string(), 100)]);
    assert_eq!(d.replicas, BTreeMap::from([(A.to_string(), 4)]));
}

#[test]
fn a_new_revision_starts_as_a_canary_at_weight_zero_until_its_first_step_has_replicas() {
    let mut sim = Sim::serving(two_steps(), B);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::CANARY_STARTED]);
    assert_eq!((sim.canary(), d.weight, d.step), (Some(B), 0, Some(1)));
    // 25% of 4 replicas is one canary pod, not four.
    assert_eq!(d.replicas.get(B), Some(&1));
    assert_eq!(d.replicas.get(A), Some(&4));
    assert_eq!(sim.status.current_step, Some(1));
    assert_eq!(sim.status.step_count, Some(2));
}

#[test]
fn a_ready_canary_gets_its_steps_weight_and_a_baseline_of_its_figures() {
    let mut sim = Sim::serving(two_steps(), B);
    sim.round();
    sim.ready(B, 1);
    sim.traffic(B, 7, 7, 0);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::WEIGHT_SET]);
    assert_eq!(d.routes(), vec![(A.to_string(), 75), (B.to_string(), 25)]);
    let base = d.state.baseline.clone().expect("baseline");
    assert_eq!(
        (base.revision.as_str(), base.requests, base.errors),
        (B, 7, 7)
    );
}

#[test]
fn fewer_than_min_requests_wait_even_after_the_pause_and_even_when_failing() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 19, 19, 0);
    sim.wait(120);
    let d = sim.round();
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!((d.weight, d.step, sim.canary()), (25, Some(1), Some(B)));
    assert!(d.progress.unwrap_or_default().contains("minRequests 20"));
}

#[test]
fn a_passing_step_holds_for_its_pause_then_advances() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 40, 1, 0);
    sim.wait(30);
    let d = sim.round();
    assert_eq!((d.step, d.weight), (Some(1), 25));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    sim.wait(31);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::ANALYSIS_PASSED]);
    assert!(
        d.events[0].message.contains("40 requests, 1 errors"),
        "{}",
        d.events[0].message
    );
    let a = sim.status.last_analysis.clone().expect("analysis");
    assert_eq!(
        (a.requests, a.errors, a.passed, a.step),
        (40, 1, true, Some(1))
    );
    assert_eq!(d.step, Some(2));
    // Step 2 (50%) needs two canary pods before its weight is set.
    assert_eq!(d.replicas.get(B), Some(&2));
    let d = sim.round();
    assert_eq!(d.weight, 25, "weight waits for replicas");
    sim.ready(B, 2);
    let d = sim.round();
    assert_eq!(d.weight, 50);
}

#[test]
fn a_healthy_canary_walks_every_step_and_is_promoted_keeping_the_old_stable_in_history() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 30, 0, 0);
    sim.wait(61);
    sim.round();
    sim.ready(B, 2);
    sim.round(); // weight 50
    sim.traffic(B, 30, 0, 0);
    sim.round(); // step 2 passed (no pause)
    let d = sim.round();
    assert_eq!(d.replicas.get(B), Some(&4), "scaled up for promotion");
    assert_eq!(sim.status.current_step, Some(3));
    sim.status.refresh_display();
    assert_eq!(sim.status.step.as_deref(), Some("2/2"));
    sim.ready(B, 4);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::PROMOTED]);
    assert_eq!((sim.stable(), sim.canary()), (Some(B), None));
    assert_eq!(d.routes(), vec![(B.to_string(), 100)]);
    assert_eq!(sim.history(), vec![A]);
    assert_eq!(d.replicas, BTreeMap::from([(A.into(), 0), (B.into(), 4)]));
    assert_eq!(sim.status.canary_weight, None);
}

#[test]
fn a_failing_error_rate_rolls_back_at_once_with_its_numbers() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 20, 5, 0);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::ANALYSIS_FAILED]);
    assert!(d.events[0].warning);
    assert!(
        d.events[0]
            .message
            .contains("error rate 0.2500 (5 of 20 requests)"),
        "{}",
        d.events[0].message
    );
    assert_eq!((sim.stable(), sim.canary()), (Some(A), None));
    assert_eq!(d.routes(), vec![(A.to_string(), 100)]);
    assert_eq!(d.replicas.get(B), Some(&0), "canary scaled down, kept");
    let record = d.rolled_back().cloned().expect("rollback record");
    assert_eq!(
        (record.revision.as_str(), record.reason.as_str()),
        (B, reasons::ANALYSIS_FAILED)
    );
    let a = sim.status.last_analysis.clone().expect("analysis");
    assert_eq!((a.requests, a.errors, a.passed), (20, 5, false));
}

#[test]
fn a_slow_p99_rolls_back() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 100, 0, 2); // every request between 0.5 s and 1 s
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::ANALYSIS_FAILED]);
    assert!(
        d.events[0].message.contains("p99 latency 1000 ms"),
        "{}",
        d.events[0].message
    );
}

#[test]
fn a_rolled_back_revision_is_held_until_the_spec_changes_again() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.traffic(B, 20, 20, 0);
    sim.round();
    for _ in 0..3 {
        let d = sim.round();
        assert_eq!(sim.canary(), None, "never restarted");
        assert!(d.rolled_back().is_some());
        assert!(d.events.is_empty());
    }
    sim.obs.desired = rev(C);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::CANARY_STARTED]);
    assert_eq!(sim.canary(), Some(C));
    assert!(
        d.rolled_back().is_none(),
        "RolledBack clears with a new canary"
    );
    assert_eq!(
        d.replicas.get(B),
        None,
        "the rolled-back revision is pruned"
    );
}

#[test]
fn a_spec_change_mid_canary_replaces_the_canary_and_never_runs_three_revisions() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.obs.desired = rev(C);
    let d = sim.round();
    assert_eq!(
        reasons_of(&d),
        vec![reasons::CANARY_REPLACED, reasons::CANARY_STARTED]
    );
    assert_eq!((sim.canary(), d.weight, d.step), (Some(C), 0, Some(1)));
    let live: Vec<&String> = d
        .replicas
        .iter()
        .filter(|(_, r)| **r > 0)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(live, vec![A, C]);
    assert_eq!(d.replicas.get(B), None);
}

#[test]
fn returning_the_spec_to_the_stable_revision_aborts_the_canary() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.obs.desired = rev(A);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::CANARY_ABORTED]);
    assert_eq!((sim.canary(), d.weight), (None, 0));
    assert_eq!(d.routes(), vec![(A.to_string(), 100)]);
}

#[test]
fn a_paused_rollout_holds_its_step_and_resumes_where_it_was() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.spec.rollout.paused = true;
    sim.traffic(B, 40, 0, 0);
    sim.wait(120);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::PAUSED]);
    assert!(d.paused);
    assert_eq!((d.step, d.weight), (Some(1), 25));
    assert!(sim.round().events.is_empty(), "one event per pause");
    sim.spec.rollout.paused = false;
    let d = sim.round();
    assert_eq!(
        reasons_of(&d),
        vec![reasons::RESUMED, reasons::ANALYSIS_PASSED]
    );
    assert_eq!(d.step, Some(2));
}

#[test]
fn a_canary_that_never_becomes_ready_rolls_back_after_the_progress_deadline() {
    let mut sim = Sim::serving(two_steps(), B);
    sim.round();
    sim.wait(600);
    let d = sim.round();
    assert_eq!(
        sim.canary(),
        Some(B),
        "exactly at the deadline it still waits"
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(1)));
    sim.wait(1);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::DEADLINE_EXCEEDED]);
    assert!(
        d.events[0]
            .message
            .contains("0/1 ready replicas after 601s"),
        "{}",
        d.events[0].message
    );
    assert_eq!(sim.canary(), None);
    assert_eq!(
        d.rolled_back().map(|r| r.reason.as_str()),
        Some(reasons::DEADLINE_EXCEEDED)
    );
}
