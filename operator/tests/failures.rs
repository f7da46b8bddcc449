//! The real Controller against the fake API server when things go wrong: invalid specs,
//! missing Secrets, failed model fetches and conflicting status writes.

mod common;

use common::*;
use deepseek_crds::status::condition_types as ct;
use deepseek_crds::{DeepSeekDeployment, Phase};
use deepseek_operator::reconcile::labels;
use fake_apiserver::Verb;
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn an_invalid_spec_is_reported_and_children_are_left_untouched() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let before = eventually("children", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
    })
    .await?;
    eventually("first status", || async {
        get(&server, "chat").filter(|d| d.status.is_some())
    })
    .await?;
    settle(&op).await?;
    server.clear_requests();
    patch_spec(
        &server,
        "chat",
        json!({"runtime": {"gpuResourceName": "gpu"}}),
    )
    .await?;
    let st = eventually("InvalidSpec", || async {
        get(&server, "chat")
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.1 == "InvalidSpec"))
    })
    .await?;
    let (_, _, message) = condition(&st, ct::READY).unwrap_or_default();
    assert!(
        message.contains("spec.runtime.gpuResourceName"),
        "{message}"
    );
    eventually("an InvalidSpec event", || async {
        Some(events_with_reason(&server, "InvalidSpec")).filter(|e| !e.is_empty())
    })
    .await?;
    let child_writes: Vec<_> = server
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
    let after = owned_deployments(&server, &uid);
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
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["runtime"] = json!({"gpuResourceName": "gpu"});
    create(&server, body).await?;
    eventually("InvalidSpec", || async {
        get(&server, "chat")
            .filter(|d| condition(d, ct::READY).is_some_and(|c| c.1 == "InvalidSpec"))
    })
    .await?;
    let writes = server
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && r.plural == "deployments")
        .count();
    assert_eq!(writes, 0);
    assert_eq!(
        get(&server, "chat")
            .and_then(|d| d.status)
            .and_then(|s| s.phase),
        Some(Phase::Failed)
    );
    op.stop().await
}

#[tokio::test]
async fn a_conflicting_status_write_is_retried() -> TestResult {
    let server = fake().await?;
    server.fail_next_writes::<DeepSeekDeployment>(Some("status"), 2);
    let op = start_operator(&server, "op-a", false).await?;
    create(&server, dsd("chat")).await?;
    eventually("status written", || async {
        get(&server, "chat").filter(|d| d.status.is_some())
    })
    .await?;
    let codes: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| {
            r.plural == deepseek_crds::PLURAL
                && r.subresource.as_deref() == Some("status")
                && r.verb == Verb::Patch
        })
        .map(|r| r.code)
        .take(3)
        .collect();
    assert_eq!(codes, vec![409, 409, 200]);
    op.stop().await
}

#[tokio::test]
async fn a_failed_model_fetch_shows_as_model_verified_false_with_the_pods_reason() -> TestResult {
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let uid = create(&server, dsd("chat"))
        .await?
        .uid()
        .unwrap_or_default();
    let rev = eventually("a revision", || async {
        owned_deployments(&server, &uid).first().map(revision)
    })
    .await?;
    server.create_raw(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("chat-{rev}-x1"), "namespace": NS, "labels": {
            labels::INSTANCE: "chat", labels::DEPLOYMENT: "chat", labels::MANAGED_BY: labels::MANAGED_BY_VALUE, labels::REVISION: rev}},
        "spec": {"containers": [{"name": "serve", "image": "x"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "fetch", "image": "x", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error",
            "message": "sha256 mismatch for SmolLM2-135M-Instruct.Q4_1.gguf"}}}]}
    }))?;
    let st = eventually("ModelVerified=False", || async {
        get(&server, "chat")
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
    let server = fake().await?;
    let op = start_operator(&server, "op-a", false).await?;
    let mut body = dsd("chat");
    body["spec"]["auth"] = json!({"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}});
    let uid = create(&server, body).await?.uid().unwrap_or_default();
    eventually("children without the secret", || async {
        Some(owned_deployments(&server, &uid)).filter(|d| !d.is_empty())
    })
    .await?;
    let secret_reads = server
        .requests()
        .iter()
        .filter(|r| r.plural == "secrets")
        .count();
    assert_eq!(secret_reads, 0);
    op.stop().await
}
