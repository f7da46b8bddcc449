//! A revision's life outside the canary walk: rollouts without steps, manual rollback, the
//! history limit, a stable revision losing its replicas, baselines, canary replica sizing.

use super::*;

#[test]
fn without_steps_a_new_revision_takes_all_traffic_once_fully_ready() {
    let mut sim = Sim::serving(spec(json!({})), B);
    let d = sim.round();
    assert_eq!(d.replicas.get(B), Some(&4));
    sim.ready(B, 3);
    assert_eq!(sim.round().weight, 0);
    sim.ready(B, 4);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::PROMOTED]);
    assert_eq!(sim.stable(), Some(B));
}

#[test]
fn a_manual_rollback_scales_the_target_up_then_serves_it_and_pins_it() {
    let mut sim = three_revisions();
    sim.spec.rollout.rollback_to = Some(B.into());
    sim.ready(B, 0);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::ROLLBACK_STARTED]);
    assert_eq!(
        d.replicas.get(B),
        Some(&4),
        "the target gets all its replicas"
    );
    assert_eq!(d.routes(), vec![(C.to_string(), 100), (B.to_string(), 0)]);
    assert_eq!(
        (sim.status.current_step, sim.status.step_count),
        (None, None)
    );
    sim.ready(B, 4);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::MANUAL_ROLLBACK]);
    assert_eq!((sim.stable(), sim.canary()), (Some(B), None));
    assert_eq!(sim.history(), vec![C, A]);
    assert_eq!(
        d.rolled_back().map(|r| r.reason.as_str()),
        Some(reasons::MANUAL_ROLLBACK)
    );
    // The spec still describes C: held while rollbackTo pins B.
    let d = sim.round();
    assert_eq!((sim.canary(), d.events.len()), (None, 0));
    assert!(d.rolled_back().is_some());
    // Clearing rollbackTo rolls forward to the spec again.
    sim.spec.rollout.rollback_to = None;
    sim.ready(C, 0);
    let d = sim.round();
    assert_eq!(reasons_of(&d), vec![reasons::CANARY_STARTED]);
    assert_eq!(sim.canary(), Some(C));
}

#[test]
fn the_history_never_exceeds_the_limit_and_keeps_the_newest() {
    let mut sim = Sim::serving(spec(json!({"revisionHistoryLimit": 2})), A);
    for (i, hash) in ["b", "c", "d", "e", "f"].iter().enumerate() {
        let hash = format!("{hash}{}", "0".repeat(9));
        sim.obs.desired = rev(&hash);
        sim.round();
        sim.ready(&hash, 4);
        let d = sim.round();
        assert!(
            sim.status.history.len() <= 2,
            "round {i}: {:?}",
            sim.history()
        );
        let kept = d.replicas.len();
        assert!(kept <= 3, "stable + 2 history Deployments, got {kept}");
    }
    assert_eq!(sim.history(), vec!["e000000000", "d000000000"]);
}

#[test]
fn a_stable_revision_losing_all_replicas_is_reported_and_not_replaced() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.ready(A, 0);
    let d = sim.round();
    assert!(d
        .events
        .iter()
        .any(|e| e.reason == reasons::STABLE_UNAVAILABLE && e.warning));
    assert_eq!((sim.stable(), sim.canary()), (Some(A), Some(B)));
    assert_eq!(d.replicas.get(A), Some(&4));
    assert!(sim.round().events.is_empty(), "reported once");
}

#[test]
fn without_router_figures_the_analysis_waits() {
    let mut sim = Sim::at_step_one(two_steps());
    sim.obs.stats = None;
    sim.wait(120);
    let d = sim.round();
    assert!(d.events.is_empty());
    assert_eq!(d.step, Some(1));
    assert!(d.progress.unwrap_or_default().contains("unavailable"));
}

#[test]
fn a_baseline_of_another_revision_is_replaced_before_judging() {
    let mut sim = Sim::at_step_one(two_steps());
    let mut state = sim.status.rollout.clone().unwrap_or_default();
    state.baseline = Some(StatsBaseline {
        revision: C.into(),
        ..StatsBaseline::default()
    });
    sim.status.rollout = Some(state);
    sim.traffic(B, 50, 50, 0);
    let d = sim.round();
    assert!(d.events.is_empty());
    assert_eq!(
        d.state.baseline.map(|b| (b.revision, b.requests)),
        Some((B.into(), 50))
    );
}

#[test]
fn canary_replicas_are_the_weights_share_rounded_up() {
    for (full, weight, want) in [
        (4, 10, 1),
        (4, 25, 1),
        (4, 50, 2),
        (4, 100, 4),
        (10, 33, 4),
        (1, 5, 1),
        (0, 50, 0),
    ] {
        assert_eq!(needed_replicas(full, weight), want, "{full} x {weight}%");
    }
}
