//! Rollouts end to end: the real Controller against the real control plane, the real router
//! binary (one process per Ready router pod) in front of one backend process per Ready runtime
//! pod (see rollout_harness), and live traffic.
//! A healthy canary walks its steps and is promoted; a failing one is rolled back on its own
//! while the stable revision answers every request; a manual rollback to the revision before
//! last serves it again; the history never exceeds its limit.

mod rollout_harness;

use deepseek_crds::status::condition_types as ct;
use deepseek_crds::{DeepSeekDeploymentStatus, Phase};
use rollout_harness::*;
use serde_json::json;

type TestResult = anyhow::Result<()>;

fn stable(st: &DeepSeekDeploymentStatus) -> Option<String> {
    st.stable_revision.as_ref().map(|r| r.hash.clone())
}

fn canary(st: &DeepSeekDeploymentStatus) -> Option<String> {
    st.canary_revision.as_ref().map(|r| r.hash.clone())
}

fn condition(st: &DeepSeekDeploymentStatus, type_: &str) -> Option<(String, String)> {
    st.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The first revision ready and serving; returns its hash.
async fn first_revision_healthy(cluster: &Cluster) -> anyhow::Result<String> {
    cluster
        .wait_status(
            "the first revision to be healthy",
            |_| {},
            |st| {
                (st.phase == Some(Phase::Healthy))
                    .then(|| stable(st))
                    .flatten()
            },
        )
        .await
}

fn canary_steps() -> serde_json::Value {
    json!({
        "steps": [{"weight": 10}, {"weight": 50, "pause": "1s"}, {"weight": 100}],
        "analysis": {"maxErrorRate": 0.05, "maxP99LatencyMs": 2000, "minRequests": 30},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_canary_advances_through_its_steps_and_is_promoted() -> TestResult {
    let mut cluster = Cluster::start(dsd("runtime:v1", canary_steps())).await?;
    let v1 = first_revision_healthy(&cluster).await?;
    cluster.start_traffic(4);
    cluster
        .patch_spec(json!({"runtime": {"image": "runtime:v2"}}))
        .await?;
    let mut steps_seen = Vec::new();
    let mut weights_seen = Vec::new();
    let v2 = cluster
        .wait_status(
            "the canary to be promoted",
            |st| {
                if let (Some(step), Some(w)) = (st.step.clone(), st.canary_weight) {
                    if steps_seen.last() != Some(&step) {
                        steps_seen.push(step);
                    }
                    if weights_seen.last() != Some(&w) {
                        weights_seen.push(w);
                    }
                }
            },
            |st| {
                (stable(st).as_deref() != Some(v1.as_str()) && canary(st).is_none())
                    .then(|| stable(st))
                    .flatten()
            },
        )
        .await?;
    cluster.stop_traffic().await;
    for step in ["1/3", "2/3", "3/3"] {
        assert!(
            steps_seen.iter().any(|s| s == step),
            "steps seen: {steps_seen:?}"
        );
    }
    for w in [10, 50, 100] {
        assert!(weights_seen.contains(&w), "weights seen: {weights_seen:?}");
    }
    let st = cluster.status().await;
    assert_eq!(st.history.first().map(|h| h.hash.clone()), Some(v1.clone()));
    let analysis = st.last_analysis.clone().expect("a last analysis");
    assert!(analysis.passed && analysis.requests >= 30, "{analysis:?}");
    let events = cluster.events().await;
    let passed = events.iter().filter(|(r, _)| r == "AnalysisPassed").count();
    assert!(passed >= 3, "one AnalysisPassed per step: {events:?}");
    assert!(events
        .iter()
        .any(|(r, m)| r == "Promoted" && m.contains(&v2)));
    let outcomes = cluster.outcomes();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    let by_v2 = outcomes
        .iter()
        .filter(|o| o.revision.as_deref() == Some(v2.as_str()))
        .count();
    assert!(by_v2 > 0, "the canary served traffic");
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_canary_is_rolled_back_while_the_stable_revision_serves_every_request(
) -> TestResult {
    let mut cluster = Cluster::start(dsd("runtime:v1", canary_steps())).await?;
    let v1 = first_revision_healthy(&cluster).await?;
    cluster.start_traffic(4);
    cluster
        .patch_spec(json!({"runtime": {"image": "runtime:bad"}}))
        .await?;
    let bad = cluster.wait_status("a canary", |_| {}, canary).await?;
    cluster
        .wait_status(
            "RolledBack=True",
            |st| {
                assert_eq!(
                    stable(st).as_deref(),
                    Some(v1.as_str()),
                    "the stable never changes"
                )
            },
            |st| {
                (condition(st, ct::ROLLED_BACK) == Some(("True".into(), "AnalysisFailed".into())))
                    .then_some(())
            },
        )
        .await?;
    let st = cluster.status().await;
    assert_eq!(
        (st.phase, canary(&st), st.canary_weight),
        (Some(Phase::RolledBack), None, None)
    );
    let analysis = st.last_analysis.clone().expect("the failed analysis");
    assert!(
        !analysis.passed && analysis.error_rate > 0.05 && analysis.requests >= 30,
        "{analysis:?}"
    );
    let message = st
        .condition(ct::ROLLED_BACK)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("error rate") && message.contains(&bad),
        "{message}"
    );
    assert!(cluster
        .events()
        .await
        .iter()
        .any(|(r, m)| r == "AnalysisFailed" && m.contains("error rate")));
    // Once the routers serve the table without the canary (after the kubelet's ConfigMap
    // delay; the operator keeps the canary's pods until then), the stable answers everything.
    cluster.routers_left(&bad).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = cluster.outcomes().len();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    cluster.stop_traffic().await;
    let outcomes = cluster.outcomes();
    for o in &outcomes {
        if o.revision.as_deref() != Some(bad.as_str()) {
            assert_eq!(
                o.status, 200,
                "a request not sent to the canary failed: {o:?}"
            );
        }
    }
    let late = &outcomes[before..];
    assert!(!late.is_empty());
    assert!(
        late.iter()
            .all(|o| o.status == 200 && o.revision.as_deref() == Some(v1.as_str())),
        "{late:?}"
    );
    assert_eq!(stable(&cluster.status().await), Some(v1));
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_rollback_to_the_revision_before_last_serves_it_and_history_stays_bounded(
) -> TestResult {
    let rollout = json!({"revisionHistoryLimit": 2});
    let mut cluster = Cluster::start(dsd("runtime:v1", rollout)).await?;
    let mut revisions = vec![first_revision_healthy(&cluster).await?];
    let bounded = |st: &DeepSeekDeploymentStatus| {
        assert!(
            st.history.len() <= 2,
            "history over its limit: {:?}",
            st.history
        );
    };
    for v in 2..=4 {
        cluster
            .patch_spec(json!({"runtime": {"image": format!("runtime:v{v}")}}))
            .await?;
        let previous = revisions.last().cloned();
        let next = cluster
            .wait_status(&format!("v{v} promoted"), bounded, |st| {
                (st.phase == Some(Phase::Healthy) && stable(st) != previous)
                    .then(|| stable(st))
                    .flatten()
            })
            .await?;
        revisions.push(next);
    }
    let st = cluster.status().await;
    let history: Vec<String> = st.history.iter().map(|h| h.hash.clone()).collect();
    assert_eq!(history, vec![revisions[2].clone(), revisions[1].clone()]);
    cluster.start_traffic(2);
    let target = revisions[2].clone();
    cluster
        .patch_spec(json!({"rollout": {"rollbackTo": target}}))
        .await?;
    cluster
        .wait_status("the rollback", bounded, |st| {
            (stable(st).as_deref() == Some(target.as_str())
                && condition(st, ct::ROLLED_BACK) == Some(("True".into(), "ManualRollback".into())))
            .then_some(())
        })
        .await?;
    let st = cluster.status().await;
    let history: Vec<String> = st.history.iter().map(|h| h.hash.clone()).collect();
    assert_eq!(history, vec![revisions[3].clone(), revisions[1].clone()]);
    assert_eq!(st.phase, Some(Phase::RolledBack));
    // The routers move to the rollback target.
    let seen = cluster.outcomes().len();
    eventually("requests served by the rollback target", || {
        let outcomes = cluster.outcomes();
        let served = outcomes[seen..]
            .iter()
            .filter(|o| o.revision.as_deref() == Some(target.as_str()))
            .count();
        async move { (served >= 20).then_some(()) }
    })
    .await?;
    cluster.stop_traffic().await;
    let outcomes = cluster.outcomes();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(
        failed.is_empty(),
        "no failed request during the rollback: {} of {} failed, e.g. {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    cluster.stop().await
}
