//! The real Controller against the in-process fake API server: the lifecycle scenarios of
//! the operator issue (create, ready, new revision, pruning, deletion, leader election), each
//! bounded in time by polling with a deadline.

mod common;

use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::{DeepSeekDeployment, Phase};
use deepseek_operator::reconcile::apply::FIELD_MANAGER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn creating_a_resource_applies_owned_children_and_reports_progress() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let deps = eventually("a runtime Deployment", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
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
        let services = server.list::<Service>(Some(NS));
        services
            .iter()
            .any(|s| s.owner_references().iter().any(|o| o.uid == uid))
            .then_some(())
    })
    .await?;
    let st = eventually("status reporting progress", || async {
        get(&server, "chat")
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
    op.stop().await
}

#[tokio::test]
async fn ready_pods_make_the_resource_ready_and_emit_an_event() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let deps = eventually("a runtime Deployment", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
    })
    .await?;
    for d in &deps {
        server.set_status::<Deployment>(
            NS,
            &d.name_any(),
            json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}),
        )?;
    }
    let st = eventually("Ready=True", || async {
        get(&server, "chat").filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
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
    eventually("an AllReplicasReady event", || async {
        Some(events_with_reason(&server, "AllReplicasReady")).filter(|e| !e.is_empty())
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
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let first = eventually("first revision", || async {
        owned_deployments(&server, &uid).first().map(revision)
    })
    .await?;
    patch_spec(
        &server,
        "chat",
        json!({"runtime": {"image": "ghcr.io/example/deepseek-runtime:v2"}}),
    )
    .await?;
    assert_eq!(
        get(&server, "chat").and_then(|d| d.metadata.generation),
        Some(2)
    );
    let new = eventually("a second revision beside the serving one", || async {
        let deps = owned_deployments(&server, &uid);
        let revs: Vec<String> = deps.iter().map(revision).collect();
        (revs.len() == 2 && revs.contains(&first))
            .then(|| deps.into_iter().find(|d| revision(d) != first))?
    })
    .await?;
    let canary = eventually("the new revision reported as canary", || async {
        get(&server, "chat")
            .and_then(|d| d.status)
            .and_then(|s| s.canary_revision)
            .map(|r| r.hash)
    })
    .await?;
    assert_eq!(canary, revision(&new));
    server.set_status::<Deployment>(
        NS,
        &new.name_any(),
        json!({"replicas": 1, "readyReplicas": 1}),
    )?;
    // Promoted: the old revision is scaled to zero and kept for rollback, not deleted.
    let only = eventually("the old revision scaled to zero", || async {
        let deps = owned_deployments(&server, &uid);
        let old = deps.iter().find(|d| revision(d) == first)?;
        let scaled = old.spec.replicas == Some(0);
        let promoted = get(&server, "chat")
            .and_then(|d| d.status)
            .and_then(|s| s.stable_revision)
            .is_some_and(|r| r.hash == revision(&new));
        (deps.len() == 2 && scaled && promoted).then(|| revision(&new))
    })
    .await?;
    let status = get(&server, "chat")
        .and_then(|d| d.status)
        .unwrap_or_default();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.stable_revision.map(|r| r.hash), Some(only));
    assert_eq!(status.canary_revision, None);
    assert_eq!(status.history.first().map(|h| h.hash.clone()), Some(first));
    op.stop().await
}

#[tokio::test]
async fn deleting_the_resource_garbage_collects_its_children() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    eventually("children", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
    })
    .await?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(server.client()?, NS);
    api.delete("chat", &DeleteParams::default()).await?;
    eventually("no children left", || async {
        let left = owned_deployments(&server, &uid).len()
            + server
                .list::<Service>(Some(NS))
                .iter()
                .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
                .count()
            + server
                .list::<ConfigMap>(Some(NS))
                .iter()
                .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
                .count();
        (left == 0).then_some(())
    })
    .await?;
    op.stop().await
}

fn lease_holder(server: &fake_apiserver::FakeApiServer) -> Option<String> {
    server.get::<Lease>(NS, LEASE)?.spec?.holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_stops_renewing() -> TestResult
{
    let server = fake().await?;
    let a = start_operator(&server, "op-a", true).await?;
    let leader = eventually("a leader", || async { lease_holder(&server) }).await?;
    let b = start_operator(&server, "op-b", true).await?;
    assert_eq!(leader, "op-a");
    create(&server, dsd("chat")).await?;
    eventually("status from the leader", || async {
        get(&server, "chat").filter(|d| d.status.is_some())
    })
    .await?;
    eventually("op-a to count its reconciliation", || async {
        (a.reconciliations() > 0).then_some(())
    })
    .await?;
    assert_eq!(b.reconciliations(), 0, "the standby must not reconcile");
    assert_eq!(lease_holder(&server).as_deref(), Some("op-a"));

    a.abort();
    eventually("op-b to take the lease", || async {
        lease_holder(&server).filter(|h| h == "op-b")
    })
    .await?;
    patch_spec(&server, "chat", json!({"replicas": 2})).await?;
    eventually("generation 2 reconciled by op-b", || async {
        get(&server, "chat")
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
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["replicas"] = json!(2);
    let uid = create(&server, body).await?.uid().unwrap_or_default();
    let pdbs = || {
        server
            .list::<PodDisruptionBudget>(Some(NS))
            .into_iter()
            .filter(|p| p.owner_references().iter().any(|o| o.uid == uid))
            .filter(|p| p.name_any() == "chat") // the router's own budget always stays
            .count()
    };
    eventually("a PodDisruptionBudget for two replicas", || async {
        (pdbs() == 1).then_some(())
    })
    .await?;
    patch_spec(&server, "chat", json!({"replicas": 1})).await?;
    eventually("the budget pruned at one replica", || async {
        (pdbs() == 0).then_some(())
    })
    .await?;
    assert_eq!(
        owned_deployments(&server, &uid).len(),
        1,
        "the revision is unchanged"
    );
    op.stop().await
}
