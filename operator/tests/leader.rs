//! Lease-based leader election against the real API server (Lease objects, optimistic
//! concurrency by resourceVersion): one holder at a time, takeover
//! only after expiry, immediate handover on release.

mod common;

use std::time::Duration;

use common::{eventually, fast_timing, Cluster};
use deepseek_operator::leader::{LeaderElector, LeaseSettings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};

fn settings(cluster: &Cluster, identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: "lock".into(),
        namespace: cluster.ns.clone(),
        identity: identity.into(),
        timing: fast_timing(),
    }
}

#[tokio::test]
async fn a_held_lease_is_refused_until_it_expires_then_taken_over() -> anyhow::Result<()> {
    let cluster = Cluster::new().await?;
    let a = LeaderElector::new(cluster.client(), settings(&cluster, "a"));
    let b = LeaderElector::new(cluster.client(), settings(&cluster, "b"));
    assert!(a.try_acquire_or_renew().await?);
    assert!(!b.try_acquire_or_renew().await?, "a holds a fresh lease");
    assert!(a.try_acquire_or_renew().await?, "the holder renews");
    let took_over = eventually("b to take the expired lease", || async {
        b.try_acquire_or_renew().await.ok().filter(|won| *won)
    })
    .await;
    assert!(took_over.is_ok());
    let spec = cluster
        .get::<Lease>("lock")
        .await
        .and_then(|l| l.spec)
        .unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(!a.try_acquire_or_renew().await?, "the old holder lost it");
    Ok(())
}

#[tokio::test]
async fn releasing_hands_the_lease_over_at_once() -> anyhow::Result<()> {
    let cluster = Cluster::new().await?;
    let a = LeaderElector::new(cluster.client(), settings(&cluster, "a"));
    let b = LeaderElector::new(cluster.client(), settings(&cluster, "b"));
    assert!(a.try_acquire_or_renew().await?);
    a.release().await?;
    assert!(b.try_acquire_or_renew().await?);
    Ok(())
}

#[tokio::test]
async fn the_leading_signal_flips_off_when_another_holder_takes_the_lease() -> anyhow::Result<()> {
    let cluster = Cluster::new().await?;
    let (leading, _task) = LeaderElector::new(cluster.client(), settings(&cluster, "a")).spawn();
    let mut rx = leading.clone();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l)).await??;
    // Someone else writes themselves in (as a competing replica would after a partition).
    cluster
        .api::<Lease>()
        .patch(
            "lock",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"holderIdentity": "intruder"}})),
        )
        .await?;
    let mut rx = leading.clone();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| !*l)).await??;
    Ok(())
}
