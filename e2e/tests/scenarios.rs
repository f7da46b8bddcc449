//! The operator scenarios against the cluster in KUBECONFIG. Each test prints
//! "skipping: no cluster (KUBECONFIG unset/unreachable)" and passes when there is none.
//! Pods of the CPU example may never become ready on a cluster without the runtime image,
//! so readiness is asserted only on what the operator itself controls.

use deepseek_crds::status::condition_types as ct;
use deepseek_crds::DeepSeekDeployment;
use deepseek_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

type TestResult = anyhow::Result<()>;

async fn owned(client: &Client, ns: &str, uid: &str) -> Vec<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let items = api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    items
        .into_iter()
        .filter(|d| d.owner_references().iter().any(|o| o.uid == uid))
        // The runtime Deployments (one per revision); the router's carries no revision.
        .filter(|d| {
            d.labels()
                .contains_key(deepseek_operator::reconcile::labels::REVISION)
        })
        .collect()
}

async fn ready_reason(api: &Api<DeepSeekDeployment>, name: &str) -> Option<String> {
    let d = api.get(name).await.ok()?;
    Some(d.status?.condition(ct::READY)?.reason.clone())
}

/// Connects, installs the CRD and makes a namespace; `None` when there is no cluster.
async fn setup(prefix: &str) -> anyhow::Result<Option<(Client, String)>> {
    let Some(client) = cluster().await else {
        return Ok(None);
    };
    install_crd(&client).await?;
    let ns = namespace(&client, prefix).await?;
    Ok(Some((client, ns)))
}

#[tokio::test]
async fn children_appear_with_owner_references_and_status_reports_progress() -> TestResult {
    let Some((client, ns)) = setup("dsd-create").await? else {
        return Ok(());
    };
    let op = start_operator(&client, &ns, "e2e-a", false)?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(client.clone(), &ns);
    let uid = api
        .create(&PostParams::default(), &dsd("chat", &ns)?)
        .await?
        .uid()
        .unwrap_or_default();
    eventually("a runtime Deployment", || async {
        Some(owned(&client, &ns, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    eventually("a Ready condition", || async {
        ready_reason(&api, "chat").await
    })
    .await?;
    op.stop().await?;
    cleanup(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn an_invalid_spec_is_reported_without_touching_children() -> TestResult {
    let Some((client, ns)) = setup("dsd-invalid").await? else {
        return Ok(());
    };
    let op = start_operator(&client, &ns, "e2e-a", false)?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(client.clone(), &ns);
    let uid = api
        .create(&PostParams::default(), &dsd("chat", &ns)?)
        .await?
        .uid()
        .unwrap_or_default();
    let before = eventually("children", || async {
        Some(owned(&client, &ns, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    api.patch("chat", &PatchParams::default(), &Patch::Merge(json!({"spec": {"runtime": {"gpuResourceName": "vendor.example/gpu", "extraArgs": ["--port"]}}}))).await?;
    eventually("InvalidSpec", || async {
        ready_reason(&api, "chat")
            .await
            .filter(|r| r == "InvalidSpec")
    })
    .await?;
    let after = owned(&client, &ns, &uid).await;
    let rvs = |d: &[Deployment]| d.iter().map(|x| x.resource_version()).collect::<Vec<_>>();
    assert_eq!(rvs(&after).len(), rvs(&before).len());
    op.stop().await?;
    cleanup(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn a_spec_change_creates_a_new_revision_and_deletion_collects_children() -> TestResult {
    let Some((client, ns)) = setup("dsd-revision").await? else {
        return Ok(());
    };
    let op = start_operator(&client, &ns, "e2e-a", false)?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(client.clone(), &ns);
    let uid = api
        .create(&PostParams::default(), &dsd("chat", &ns)?)
        .await?
        .uid()
        .unwrap_or_default();
    let first = eventually("first revision", || async {
        owned(&client, &ns, &uid)
            .await
            .first()
            .map(|d| d.name_any())
    })
    .await?;
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"runtime": {"image": "ghcr.io/example/deepseek-runtime:e2e"}}}),
        ),
    )
    .await?;
    // The new revision runs beside the serving one until its pods are ready (they may never
    // be on a cluster without the runtime image), so only its appearance is asserted.
    eventually("a second revision beside the first", || async {
        let names: Vec<String> = owned(&client, &ns, &uid)
            .await
            .iter()
            .map(|d| d.name_any())
            .collect();
        (names.len() == 2 && names.contains(&first)).then_some(())
    })
    .await?;
    api.delete("chat", &DeleteParams::foreground()).await?;
    eventually("children garbage-collected", || async {
        owned(&client, &ns, &uid).await.is_empty().then_some(())
    })
    .await?;
    op.stop().await?;
    cleanup(&client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_standby_takes_over() -> TestResult {
    let Some((client, ns)) = setup("dsd-leader").await? else {
        return Ok(());
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async { leases.get(LEASE).await.ok()?.spec?.holder_identity };
    let a = start_operator(&client, &ns, "e2e-a", true)?;
    eventually("op a leads", || async {
        holder().await.filter(|h| h == "e2e-a")
    })
    .await?;
    let b = start_operator(&client, &ns, "e2e-b", true)?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &dsd("chat", &ns)?)
        .await?;
    eventually("status from the leader", || async {
        ready_reason(&api, "chat").await
    })
    .await?;
    assert_eq!(b.metrics.reconciliations.get(), 0);
    a.abort();
    eventually("op b takes over", || async {
        holder().await.filter(|h| h == "e2e-b")
    })
    .await?;
    api.patch(
        "chat",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await?;
    eventually("generation 2 observed", || async {
        api.get("chat")
            .await
            .ok()?
            .status?
            .observed_generation
            .filter(|g| *g == 2)
    })
    .await?;
    b.stop().await?;
    cleanup(&client, &ns).await;
    Ok(())
}
