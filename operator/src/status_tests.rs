//! Status computation: conditions, phase, transition times and history.

use super::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn dsd(replicas: i32, status: Option<DeepSeekDeploymentStatus>) -> DeepSeekDeployment {
    let mut d: DeepSeekDeployment = serde_json::from_value(json!({
        "apiVersion": "inference.deepseek-k8s.dev/v1alpha1", "kind": "DeepSeekDeployment",
        "metadata": {"name": "chat", "namespace": "default", "generation": 3},
        "spec": {"model": {"name": "m", "source": {"url": {"url": "http://x"}},
            "files": [{"path": "m.gguf", "sha256": SHA}], "format": "gguf"}, "replicas": replicas}
    }))
    .unwrap_or_else(|e| panic!("fixture: {e}"));
    d.status = status;
    d
}

fn rev(hash: &str) -> RevisionRef {
    RevisionRef {
        hash: hash.into(),
        model_digest: "d".into(),
        image: "i".into(),
    }
}

fn t(secs: i64) -> Time {
    Time(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs))
}

fn observed(hash: &str, ready: i32) -> Observed {
    Observed {
        deployments: vec![DeploymentObservation {
            name: format!("chat-{hash}"),
            revision: Some(hash.into()),
            replicas: 2,
            current_replicas: 2,
            ready_replicas: ready,
        }],
        pods: vec![],
    }
}

fn cond<'a>(st: &'a DeepSeekDeploymentStatus, type_: &str) -> (&'a str, &'a str) {
    st.condition(type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
        .unwrap_or_default()
}

#[test]
fn all_replicas_ready_is_healthy_and_ready() {
    let st = compute(
        &dsd(2, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 2),
        &t(10),
    );
    assert_eq!(cond(&st, ct::READY), ("True", reasons::ALL_REPLICAS_READY));
    assert_eq!(
        cond(&st, ct::PROGRESSING),
        ("False", REASON_ROLLOUT_COMPLETE)
    );
    assert_eq!(st.phase, Some(Phase::Healthy));
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(st.ready.as_deref(), Some("2/2"));
}

#[test]
fn missing_replicas_are_progressing_then_degraded_once_it_was_healthy() {
    let first = compute(
        &dsd(2, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(10),
    );
    assert_eq!(first.phase, Some(Phase::Progressing));
    assert_eq!(
        cond(&first, ct::READY),
        ("False", reasons::REPLICAS_NOT_READY)
    );
    let healthy = compute(
        &dsd(2, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 2),
        &t(10),
    );
    let degraded = compute(
        &dsd(2, Some(healthy)),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(20),
    );
    assert_eq!(degraded.phase, Some(Phase::Degraded));
}

#[test]
fn transition_time_only_moves_when_the_status_flips() {
    let a = compute(
        &dsd(2, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 0),
        &t(10),
    );
    let b = compute(
        &dsd(2, Some(a.clone())),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(20),
    );
    let ready_time = |s: &DeepSeekDeploymentStatus| {
        s.condition(ct::READY)
            .map(|c| c.last_transition_time.clone())
    };
    assert_eq!(
        ready_time(&b),
        Some(t(10)),
        "still False: time kept, message updated"
    );
    let c = compute(
        &dsd(2, Some(b.clone())),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 2),
        &t(30),
    );
    assert_eq!(ready_time(&c), Some(t(30)));
    let changes = transitions(&b.conditions, &c.conditions);
    assert_eq!(
        changes.iter().map(|t| t.type_.as_str()).collect::<Vec<_>>(),
        vec![ct::READY, ct::PROGRESSING]
    );
    assert!(transitions(&c.conditions, &c.conditions).is_empty());
}

#[test]
fn a_failed_fetch_makes_model_verified_false_with_the_pod_message() {
    let mut obs = observed("aaaaaaaaaa", 0);
    obs.pods.push(PodObservation {
        name: "chat-aaaaaaaaaa-1".into(),
        revision: Some("aaaaaaaaaa".into()),
        ready: false,
        init: InitState::Failed {
            container: "fetch".into(),
            reason: "Error".into(),
            message: "sha256 mismatch".into(),
        },
        config_error: None,
    });
    let st = compute(&dsd(1, None), &rev("aaaaaaaaaa"), &obs, &t(10));
    assert_eq!(
        cond(&st, ct::MODEL_VERIFIED),
        ("False", reasons::MODEL_FETCH_FAILED)
    );
    assert_eq!(cond(&st, ct::READY), ("False", reasons::MODEL_FETCH_FAILED));
    assert_eq!(st.phase, Some(Phase::Failed));
    let message = st
        .model_verification
        .and_then(|v| v.message)
        .unwrap_or_default();
    assert!(
        message.contains("fetch failed (Error): sha256 mismatch"),
        "{message}"
    );
}

#[test]
fn a_new_revision_pushes_the_old_one_into_a_bounded_history() {
    let mut st = compute(
        &dsd(1, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(1),
    );
    for (i, h) in ["bbbbbbbbbb", "cccccccccc", "dddddddddd", "eeeeeeeeee"]
        .iter()
        .enumerate()
    {
        st = compute(
            &dsd(1, Some(st)),
            &rev(h),
            &observed(h, 1),
            &t(2 + i as i64),
        );
    }
    let hashes: Vec<&str> = st.history.iter().map(|h| h.hash.as_str()).collect();
    assert_eq!(hashes, vec!["dddddddddd", "cccccccccc", "bbbbbbbbbb"]);
    assert_eq!(
        st.stable_revision.map(|r| r.hash),
        Some("eeeeeeeeee".into())
    );
}

#[test]
fn invalid_spec_names_the_field_and_keeps_the_serving_revision() {
    let healthy = compute(
        &dsd(1, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(1),
    );
    let problems = [SpecProblem {
        field: "spec.runtime.gpuResourceName".into(),
        message: "spec.runtime.gpuResourceName: \"gpu\" is bad".into(),
    }];
    let st = invalid_spec(&dsd(1, Some(healthy)), &problems, &t(2));
    assert_eq!(cond(&st, ct::READY), ("False", reasons::INVALID_SPEC));
    assert!(st
        .condition(ct::READY)
        .is_some_and(|c| c.message.contains("spec.runtime.gpuResourceName")));
    assert_eq!(
        st.stable_revision.map(|r| r.hash),
        Some("aaaaaaaaaa".into())
    );
    assert_eq!(st.phase, Some(Phase::Healthy), "children keep serving");
}

#[test]
fn a_new_revision_stays_canary_until_ready_while_the_old_one_keeps_serving() {
    let healthy = compute(
        &dsd(1, None),
        &rev("aaaaaaaaaa"),
        &observed("aaaaaaaaaa", 1),
        &t(1),
    );
    let mut obs = observed("aaaaaaaaaa", 1);
    obs.deployments.push(DeploymentObservation {
        name: "chat-bbbbbbbbbb".into(),
        revision: Some("bbbbbbbbbb".into()),
        replicas: 1,
        current_replicas: 1,
        ready_replicas: 0,
    });
    let d = dsd(1, Some(healthy));
    let st = compute(&d, &rev("bbbbbbbbbb"), &obs, &t(2));
    assert_eq!(
        st.stable_revision.as_ref().map(|r| r.hash.as_str()),
        Some("aaaaaaaaaa")
    );
    assert_eq!(
        st.canary_revision.as_ref().map(|r| r.hash.as_str()),
        Some("bbbbbbbbbb")
    );
    assert_eq!(cond(&st, ct::READY), ("True", reasons::ALL_REPLICAS_READY));
    assert_eq!(cond(&st, ct::PROGRESSING), ("True", REASON_ROLLING_OUT));
    assert_eq!(st.phase, Some(Phase::Progressing));
    assert_eq!(
        kept_revisions(&dsd(1, Some(st)), &rev("bbbbbbbbbb")),
        vec!["aaaaaaaaaa".to_string()]
    );
}

#[test]
fn status_replicas_are_the_pods_that_exist_and_the_selector_finds_them() {
    // Scaled to 3 but one pod not created yet: the scale subresource must say 2, not 3.
    let mut obs = observed("aaaaaaaaaa", 2);
    obs.deployments[0].replicas = 3;
    let st = compute(&dsd(3, None), &rev("aaaaaaaaaa"), &obs, &t(1));
    assert_eq!(st.replicas, Some(2));
    assert_eq!(
        st.selector.as_deref(),
        Some("inference.deepseek-k8s.dev/component=runtime,inference.deepseek-k8s.dev/deployment=chat")
    );
}

#[test]
fn a_missing_secret_shows_as_ready_false_pod_config_error_with_the_kubelets_message() {
    let mut obs = observed("aaaaaaaaaa", 0);
    obs.pods.push(PodObservation {
        name: "chat-router-1".into(),
        revision: None,
        ready: false,
        init: InitState::Running,
        config_error: Some("pod chat-router-1: secret \"chat-redis\" not found".into()),
    });
    let st = compute(&dsd(1, None), &rev("aaaaaaaaaa"), &obs, &t(10));
    assert_eq!(cond(&st, ct::READY), ("False", reasons::POD_CONFIG_ERROR));
    let message = st
        .conditions
        .iter()
        .find(|c| c.type_ == ct::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("secret \"chat-redis\" not found"),
        "{message}"
    );
}
