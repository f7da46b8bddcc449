//! The real Controller against the real control plane when things go wrong: invalid specs,
//! Secrets the operator never reads, failed model fetches and conflicting status writes.

mod common;

use common::recorder::Verb;
use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::Phase;
use deepseek_operator::reconcile::labels;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn an_invalid_spec_is_reported_and_children_are_left_untouched() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let uid = create(&cluster, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    eventually("children", || async {
        Some(owned_deployments(&cluster, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    // Let the real controllers finish with the pod (Ready) so nothing else moves.
    eventually("Ready", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.0 == "True"))
    })
    .await?;
    settle(&op).await?;
    let before = owned_deployments(&cluster, &uid).await;
    cluster.clear_requests();
    patch_spec(
        &cluster,
        "chat",
        json!({"runtime": {"gpuResourceName": "gpu"}}),
    )
    .await?;
    let st = eventually("InvalidSpec", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.1 == "InvalidSpec"))
    })
    .await?;
    let (_, _, message) = condition(&st, ct::READY).unwrap_or_default();
    assert!(
        message.contains("spec.runtime.gpuResourceName"),
        "{message}"
    );
    eventually("an InvalidSpec event", || async {
        Some(events_with_reason(&cluster, "InvalidSpec").await).filter(|e| !e.is_empty())
    })
    .await?;
    let child_writes: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| {
            r.is_write()
                && [
                    "deployments",
                    "services",
                    "configmaps",
                    "poddisruptionbudgets",
                ]
                .contains(&r.plural.as_str())
        })
        .collect();
    assert!(
        child_writes.is_empty(),
        "children were written: {child_writes:?}"
    );
    let after = owned_deployments(&cluster, &uid).await;
    assert_eq!(
        after
            .iter()
            .map(|d| d.resource_version())
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|d| d.resource_version())
            .collect::<Vec<_>>()
    );
    op.stop().await
}

#[tokio::test]
async fn an_invalid_spec_from_the_start_creates_no_children() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["runtime"] = json!({"gpuResourceName": "gpu"});
    create(&cluster, body).await?;
    eventually("InvalidSpec", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.1 == "InvalidSpec"))
    })
    .await?;
    let writes = cluster
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && r.plural == "deployments")
        .count();
    assert_eq!(writes, 0);
    assert_eq!(
        get(&cluster, "chat")
            .await
            .and_then(|d| d.status)
            .and_then(|s| s.phase),
        Some(Phase::Failed)
    );
    op.stop().await
}

#[tokio::test]
async fn a_conflicting_status_write_is_retried() -> TestResult {
    let cluster = Cluster::new().await?;
    // The next two status writes reach the real server with a stale resourceVersion.
    cluster
        .recorder
        .fail_next_status_writes(deepseek_crds::PLURAL, 2);
    let op = start_operator(&cluster, "op-a", false).await?;
    create(&cluster, dsd("chat")).await?;
    eventually("status written", || async {
        get(&cluster, "chat").await.filter(|d| d.status.is_some())
    })
    .await?;
    let codes: Vec<u16> = cluster
        .requests()
        .iter()
        .filter(|r| {
            r.plural == deepseek_crds::PLURAL
                && r.subresource.as_deref() == Some("status")
                && r.verb == Verb::Patch
        })
        .map(|r| r.code)
        .collect();
    // Both conflicts were answered 409 by the server and a retry then succeeded (a second
    // reconcile may interleave its own write on a loaded machine, so the order may vary).
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 2, "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    op.stop().await
}

#[tokio::test]
async fn a_failed_model_fetch_shows_as_model_verified_false_with_the_pods_reason() -> TestResult {
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    // No node has 16 GPUs: the Deployment's own pod stays Pending and kwok leaves it alone.
    body["spec"]["runtime"] = json!({"gpus": 16});
    let uid = create(&cluster, body).await?.uid().unwrap_or_default();
    let rev = eventually("a revision", || async {
        owned_deployments(&cluster, &uid)
            .await
            .first()
            .map(revision)
    })
    .await?;
    // A pod of the revision whose fetch init container failed, as a kubelet reports it. It is
    // bound to a node kwok does not manage, so neither the scheduler nor kwok touch it; its
    // status is written through the status subresource, as a kubelet does.
    let name = format!("chat-{rev}-x1");
    cluster
        .create_raw(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {
                labels::INSTANCE: "chat", labels::DEPLOYMENT: "chat", labels::MANAGED_BY: labels::MANAGED_BY_VALUE, labels::REVISION: rev}},
            "spec": {"nodeName": "node-without-kubelet", "initContainers": [{"name": "fetch", "image": "x"}],
                "containers": [{"name": "serve", "image": "x"}]}
        }))
        .await?;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = cluster.api();
    pods.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Pending", "initContainerStatuses": [{"name": "fetch", "image": "x", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error",
            "message": "sha256 mismatch for SmolLM2-135M-Instruct.Q4_1.gguf"}}}]}})),
    )
    .await?;
    let st = eventually("ModelVerified=False", || async {
        get(&cluster, "chat")
            .await
            .filter(|d| condition(d, ct::MODEL_VERIFIED).is_some_and(|c| c.0 == "False"))
    })
    .await?;
    let (_, reason, message) = condition(&st, ct::MODEL_VERIFIED).unwrap_or_default();
    assert_eq!(reason, "ModelFetchFailed");
    assert!(message.contains("sha256 mismatch"), "{message}");
    op.stop().await
}

#[tokio::test]
async fn a_secret_reference_is_never_looked_up_by_the_operator() -> TestResult {
    // Least privilege: the operator may not read Secrets; a missing one shows on the pods that
    // mount it (CreateContainerConfigError), so the children are applied regardless.
    let cluster = Cluster::new().await?;
    let op = start_operator(&cluster, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["auth"] = json!({"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}});
    let uid = create(&cluster, body).await?.uid().unwrap_or_default();
    eventually("children without the secret", || async {
        Some(owned_deployments(&cluster, &uid).await).filter(|d| !d.is_empty())
    })
    .await?;
    let secret_reads = cluster
        .requests()
        .iter()
        .filter(|r| r.plural == "secrets")
        .count();
    assert_eq!(secret_reads, 0);
    op.stop().await
}

/// The real server compiles the CRD's CEL rules: `kubectl apply` of a resource breaking one
/// is refused with the rule's message, which is what the user sees.
#[tokio::test]
async fn kubectl_apply_shows_the_crds_cel_rejection() -> TestResult {
    let cluster = Cluster::new().await?;
    let mut body = dsd("chat");
    body["metadata"]["namespace"] = json!(cluster.ns);
    // Canary weights out of order break `self.steps.map(s, s.weight).isSorted() && ...`.
    body["spec"]["rollout"] = json!({"steps": [{"weight": 50}, {"weight": 10}]});
    let (ok, _, stderr) = kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&body)?))?;
    println!("kubectl apply says:\n{stderr}");
    assert!(!ok, "the server accepted unsorted canary weights");
    assert!(
        stderr.contains("rollout.steps weights must be strictly ascending"),
        "{stderr}"
    );
    // A name too long for the children's names (the schema restricts metadata.name).
    let mut long = dsd(&"x".repeat(53));
    long["metadata"]["namespace"] = json!(cluster.ns);
    let (ok, _, stderr) = kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&long)?))?;
    println!("kubectl apply says:\n{stderr}");
    assert!(!ok, "the server accepted a 53-character name");
    assert!(stderr.contains("metadata.name: Too long"), "{stderr}");
    // A name that is a DNS label but not a DNS-1035 one (Services cannot start with a digit).
    let mut digit = dsd("1chat");
    digit["metadata"]["namespace"] = json!(cluster.ns);
    let (ok, _, stderr) = kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&digit)?))?;
    println!("kubectl apply says:\n{stderr}");
    assert!(!ok, "the server accepted a name starting with a digit");
    assert!(
        stderr.contains("metadata.name: Invalid value: \"1chat\""),
        "{stderr}"
    );
    // The OpenAPI schema (bounds) is enforced as well.
    let mut many = dsd("chat");
    many["metadata"]["namespace"] = json!(cluster.ns);
    many["spec"]["runtime"] = json!({"gpus": 17});
    let (ok, _, stderr) = kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&many)?))?;
    println!("kubectl apply says:\n{stderr}");
    assert!(!ok, "the server accepted 17 GPUs");
    assert!(stderr.contains("spec.runtime.gpus"), "{stderr}");
    Ok(())
}
