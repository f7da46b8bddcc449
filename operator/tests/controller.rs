//! The real Controller against the real control plane (scripts/control-plane.sh): the
//! lifecycle scenarios of the operator issue (create, ready, new revision, pruning, deletion,
//! leader election), each bounded in time by polling with a deadline. Pods are scheduled by
//! kube-scheduler onto kwok's GPU nodes and made Running/Ready by kwok; Deployments become
//! ready through the real Deployment and ReplicaSet controllers; deletion is the real garbage
//! collector's.

mod common;

use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::Phase;
use deepseek_operator::reconcile::apply::FIELD_MANAGER;
use deepseek_operator::reconcile::labels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DeleteParams;
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn creating_a_resource_applies_owned_children_and_reports_progress() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    // More GPUs than any node has: the pod stays Pending (unschedulable), so the resource
    // stays Progressing for the assertions below.
    body["spec"]["runtime"] = json!({"gpus": 16});
    let uid = create(&cluster, body).await?.uid().unwrap_or_default();
    let deps = eventually("a runtime Deployment", || async {
        Some(owned_deployments(&cluster, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    for d in &deps {
        let owner = d.owner_references().iter().find(|o| o.uid == uid).cloned();
        assert_eq!(owner.as_ref().and_then(|o| o.controller), Some(true));
        let managers: Vec<_> = d
            .managed_fields()
            .iter()
            .map(|m| (m.manager.clone(), m.operation.clone()))
            .collect();
        assert!(
            managers.contains(&(Some(FIELD_MANAGER.into()), Some("Apply".into()))),
            "{managers:?}"
        );
    }
    // Children are applied one after the other: the Service may follow the Deployment.
    eventually("the chat Service", || async {
        let services = cluster.list::<Service>().await;
        services.iter().any(|s| owned_by(s, &uid)).then_some(())
    })
    .await?;
    let st = eventually("status reporting progress", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::PROGRESSING).is_some_and(|c| c.0 == "True"))
            // The first round observes before applying (Pending); the next sees the Deployment.
            .filter(|d| d.status.as_ref().and_then(|s| s.phase) == Some(Phase::Progressing))
    })
    .await?;
    let status = st.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert_eq!(
        condition(&st, ct::READY).map(|c| (c.0, c.1)),
        Some(("False".into(), "ReplicasNotReady".into()))
    );
    assert_eq!(
        status.stable_revision.map(|r| r.hash),
        Some(revision(&deps[0]))
    );
    // The real scheduler says why: no node has 16 GPUs.
    let pod = eventually("the runtime pod, unschedulable", || async {
        cluster.list::<Pod>().await.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
        })
    })
    .await?;
    assert_eq!(
        pod.labels().get(labels::INSTANCE).map(String::as_str),
        Some("chat")
    );
    op.stop().await
}

#[tokio::test]
async fn ready_pods_make_the_resource_ready_and_emit_an_event() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    create(&cluster, dsd("chat")).await?;
    // kube-scheduler binds the pod to a kwok node, kwok reports it Running and Ready, the
    // ReplicaSet and Deployment controllers count it.
    let st = eventually("Ready=True", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
    })
    .await?;
    assert_eq!(
        st.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Healthy)
    );
    assert_eq!(
        st.status.as_ref().and_then(|s| s.ready.clone()),
        Some("1/1".into())
    );
    let pods = cluster.list::<Pod>().await;
    assert!(
        pods.iter().any(|p| p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| n.starts_with("gpu-node-"))),
        "runtime pods on kwok's GPU nodes: {:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    eventually("an AllReplicasReady event", || async {
        Some(events_with_reason(&cluster, "AllReplicasReady").await).filter(|e| !e.is_empty())
    })
    .await?;
    let metrics = http_get(op.http_addr, "/metrics").await?;
    assert!(
        metrics.contains("deepseek_operator_reconciliations_total"),
        "{metrics}"
    );
    assert!(http_get(op.http_addr, "/readyz")
        .await?
        .starts_with("HTTP/1.0 200"));
    op.stop().await
}

#[tokio::test]
async fn a_spec_change_rolls_out_a_new_revision_and_scales_the_old_one_to_zero_once_ready(
) -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let first = eventually("first revision", || async {
        owned_deployments(&cluster, &uid)
            .await
            .first()
            .map(revision)
    })
    .await?;
    patch_spec(
        &cluster,
        "chat",
        json!({"runtime": {"image": "ghcr.io/example/deepseek-runtime:v2"}}),
    )
    .await?;
    assert_eq!(
        get(&cluster, "chat")
            .await
            .and_then(|d| d.metadata.generation),
        Some(2)
    );
    let new = eventually("a second revision beside the serving one", || async {
        let deps = owned_deployments(&cluster, &uid).await;
        let revs: Vec<String> = deps.iter().map(revision).collect();
        (revs.len() == 2 && revs.contains(&first))
            .then(|| deps.into_iter().find(|d| revision(d) != first))?
    })
    .await?;
    // The new revision's pods become Ready through the real controllers and kwok.
    // Promoted: the old revision is scaled to zero and kept for rollback, not deleted.
    let only = eventually("the old revision scaled to zero", || async {
        let deps = owned_deployments(&cluster, &uid).await;
        let old = deps.iter().find(|d| revision(d) == first)?;
        let scaled = old.spec.replicas == Some(0);
        let promoted = get(&cluster, "chat")
            .await
            .and_then(|d| d.status)
            .and_then(|s| s.stable_revision)
            .is_some_and(|r| r.hash == revision(&new));
        (deps.len() == 2 && scaled && promoted).then(|| revision(&new))
    })
    .await?;
    let status = eventually("status settled on the new revision", || async {
        get(&cluster, "chat")
            .await
            .and_then(|d| d.status)
            .filter(|s| s.canary_revision.is_none() && s.observed_generation == Some(2))
    })
    .await?;
    assert_eq!(status.stable_revision.map(|r| r.hash), Some(only));
    assert_eq!(status.history.first().map(|h| h.hash.clone()), Some(first));
    op.stop().await
}

#[tokio::test]
async fn deleting_the_resource_garbage_collects_its_children() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    eventually("children and a running pod", || async {
        let deps = owned_deployments(&cluster, &uid).await;
        let pods = cluster.list::<Pod>().await;
        (!deps.is_empty() && !pods.is_empty()).then_some(())
    })
    .await?;
    cluster
        .api::<deepseek_crds::DeepSeekDeployment>()
        .delete("chat", &DeleteParams::default())
        .await?;
    // The real garbage collector follows the owner references: Deployments, then their
    // ReplicaSets and pods, Services, ConfigMaps.
    eventually("no children left", || async {
        let left = owned_deployments(&cluster, &uid).await.len()
            + cluster
                .list::<Service>()
                .await
                .iter()
                .filter(|s| owned_by(*s, &uid))
                .count()
            + cluster
                .list::<ConfigMap>()
                .await
                .iter()
                .filter(|s| owned_by(*s, &uid))
                .count()
            + cluster.list::<Deployment>().await.len()
            + cluster.list::<Pod>().await.len();
        (left == 0).then_some(())
    })
    .await?;
    op.stop().await
}

async fn lease_holder(cluster: &Cluster) -> Option<String> {
    cluster.get::<Lease>(LEASE).await?.spec?.holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_stops_renewing() -> TestResult
{
    let cluster = Cluster::new().await?;
    let a = start_operator(&cluster, "op-a", true).await?;
    let leader = eventually("a leader", || async { lease_holder(&cluster).await }).await?;
    let b = start_operator(&cluster, "op-b", true).await?;
    assert_eq!(leader, "op-a");
    create(&cluster, dsd("chat")).await?;
    eventually("status from the leader", || async {
        get(&cluster, "chat").await.filter(|d| d.status.is_some())
    })
    .await?;
    eventually("op-a to count its reconciliation", || async {
        (a.reconciliations() > 0).then_some(())
    })
    .await?;
    assert_eq!(b.reconciliations(), 0, "the standby must not reconcile");
    assert_eq!(lease_holder(&cluster).await.as_deref(), Some("op-a"));

    a.abort();
    eventually("op-b to take the lease", || async {
        lease_holder(&cluster).await.filter(|h| h == "op-b")
    })
    .await?;
    patch_spec(&cluster, "chat", json!({"replicas": 2})).await?;
    eventually("generation 2 reconciled by op-b", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| d.status.as_ref().and_then(|s| s.observed_generation) == Some(2))
    })
    .await?;
    eventually("op-b to count its reconciliation", || async {
        (b.reconciliations() > 0).then_some(())
    })
    .await?;
    b.stop().await
}

#[tokio::test]
async fn a_child_kind_no_longer_desired_is_pruned() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["replicas"] = json!(2);
    let uid = create(&cluster, body).await?.uid().unwrap_or_default();
    let pdbs = || async {
        cluster
            .list::<PodDisruptionBudget>()
            .await
            .into_iter()
            .filter(|p| owned_by(p, &uid))
            .filter(|p| p.name_any() == "chat") // the router's own budget always stays
            .count()
    };
    eventually("a PodDisruptionBudget for two replicas", || async {
        (pdbs().await == 1).then_some(())
    })
    .await?;
    patch_spec(&cluster, "chat", json!({"replicas": 1})).await?;
    eventually("the budget pruned at one replica", || async {
        (pdbs().await == 0).then_some(())
    })
    .await?;
    assert_eq!(
        owned_deployments(&cluster, &uid).await.len(),
        1,
        "the revision is unchanged"
    );
    op.stop().await
}
