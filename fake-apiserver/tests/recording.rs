//! The request log as RBAC sees it: each call's verb, group and resource/subresource, with a
//! creating server-side apply needing `create` as well as `patch`.

mod common;

use common::*;
use fake_apiserver::ApiCall;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

fn call(verb: &str, group: &str, resource: &str) -> ApiCall {
    ApiCall {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
    }
}

#[tokio::test]
async fn api_calls_name_verbs_groups_and_subresources_as_rbac_does() -> TestResult {
    let (server, client) = start().await?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("recorder-test");
    let body = deployment("web", 1);
    api.patch("web", &pp, &Patch::Apply(&body)).await?;
    api.patch("web", &pp, &Patch::Apply(&body)).await?;
    api.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1}})),
    )
    .await?;
    api.list(&ListParams::default()).await?;
    let _ = api.get("missing").await;
    let calls = server.api_calls();
    let names: Vec<ApiCall> = calls.keys().cloned().collect();
    assert_eq!(
        names,
        vec![
            call("create", "apps", "deployments"),
            call("get", "apps", "deployments"),
            call("list", "apps", "deployments"),
            call("patch", "apps", "deployments"),
            call("patch", "apps", "deployments/status"),
        ]
    );
    // Only the first apply created the object; both needed `patch`.
    assert_eq!(calls[&call("create", "apps", "deployments")].len(), 1);
    assert_eq!(calls[&call("patch", "apps", "deployments")].len(), 2);
    assert_eq!(call("get", "", "secrets").to_string(), "get \"\" secrets");
    Ok(())
}
