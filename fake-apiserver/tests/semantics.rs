//! The fake API server's write semantics, exercised through a real `kube::Client`.

mod common;

use common::*;
use fake_apiserver::Verb;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_a_409_conflict() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"k": "1"}))?)
        .await?;
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = api.replace("a", &PostParams::default(), &fresh).await?;
    assert_ne!(updated.resource_version(), created.resource_version());
    let err = api
        .replace("a", &PostParams::default(), &created)
        .await
        .err();
    assert_eq!(err.as_ref().and_then(api_code), Some(409));
    Ok(())
}

#[tokio::test]
async fn create_twice_is_already_exists_and_missing_get_is_not_found() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a", json!({}))?)
        .await?;
    let dup = api
        .create(&PostParams::default(), &cm("a", json!({}))?)
        .await
        .err();
    assert!(
        matches!(&dup, Some(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists")
    );
    let missing = api.get("nope").await.err();
    assert!(
        matches!(&missing, Some(kube::Error::Api(s)) if s.code == 404 && s.reason == "NotFound")
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_removes_fields_it_no_longer_applies() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("mgr-a");
    api.patch(
        "a",
        &pp,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}})),
    )
    .await?;
    // Another manager adds a field of its own; manager A's re-apply must keep it.
    api.patch(
        "a",
        &PatchParams::apply("mgr-b"),
        &Patch::Apply(json!({"apiVersion": "v1",
        "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"z": "3"}})),
    )
    .await?;
    let after = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a"}, "data": {"x": "9"}})),
        )
        .await?;
    let data = after.data.clone().unwrap_or_default();
    assert_eq!(data.get("x").map(String::as_str), Some("9"));
    assert_eq!(
        data.get("y"),
        None,
        "y was applied by mgr-a before and dropped now"
    );
    assert_eq!(data.get("z").map(String::as_str), Some("3"));
    let managers: Vec<String> = after
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, vec!["mgr-a".to_string(), "mgr-b".to_string()]);
    Ok(())
}

#[tokio::test]
async fn apply_changing_another_managers_field_conflicts_unless_forced() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let body = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": v}});
    api.patch("a", &PatchParams::apply("mgr-a"), &Patch::Apply(body("1")))
        .await?;
    let same = api
        .patch("a", &PatchParams::apply("mgr-b"), &Patch::Apply(body("1")))
        .await;
    assert!(
        same.is_ok(),
        "equal values are shared ownership, not a conflict"
    );
    let conflict = api
        .patch("a", &PatchParams::apply("mgr-b"), &Patch::Apply(body("2")))
        .await
        .err();
    assert!(
        matches!(&conflict, Some(kube::Error::Api(s)) if s.code == 409 && s.message.contains("mgr-a"))
    );
    let forced = api
        .patch(
            "a",
            &PatchParams::apply("mgr-b").force(),
            &Patch::Apply(body("2")),
        )
        .await?;
    assert_eq!(
        forced.data.unwrap_or_default().get("x").map(String::as_str),
        Some("2")
    );
    Ok(())
}

#[tokio::test]
async fn status_subresource_is_isolated_and_generation_follows_spec_only() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let mut body = deployment("web", 1);
    body["status"] = json!({"replicas": 7});
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status on create is dropped");

    let st = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}, "spec": {"replicas": 5}})),
        )
        .await?;
    assert_eq!(st.status.and_then(|s| s.ready_replicas), Some(1));
    assert_eq!(
        st.spec.replicas,
        Some(1),
        "a status write never changes spec"
    );
    assert_eq!(st.metadata.generation, Some(1));

    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"x": "y"}}, "status": {"readyReplicas": 0}}),
            ),
        )
        .await?;
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep generation"
    );
    assert_eq!(
        labelled.status.and_then(|s| s.ready_replicas),
        Some(1),
        "main writes ignore status"
    );

    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(scaled.metadata.generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents_recursively() -> TestResult {
    let (server, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let root = cms
        .create(&PostParams::default(), &cm("root", json!({}))?)
        .await?;
    let owned_by = |o: &ConfigMap, name: &str| -> anyhow::Result<ConfigMap> {
        let mut c = cm(name, json!({}))?;
        c.metadata.owner_references = Some(vec![serde_json::from_value(
            json!({"apiVersion": "v1",
            "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().unwrap_or_default(), "controller": true}),
        )?]);
        Ok(c)
    };
    let child = cms
        .create(&PostParams::default(), &owned_by(&root, "child")?)
        .await?;
    cms.create(&PostParams::default(), &owned_by(&child, "grandchild")?)
        .await?;
    cms.create(&PostParams::default(), &cm("unrelated", json!({}))?)
        .await?;
    cms.delete("root", &DeleteParams::default()).await?;
    let left: Vec<String> = server
        .list::<ConfigMap>(Some("default"))
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(left, vec!["unrelated".to_string()]);
    let missing = cms.delete("root", &DeleteParams::default()).await.err();
    assert_eq!(missing.as_ref().and_then(api_code), Some(404));
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_they_are_removed() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut c = cm("f", json!({}))?;
    c.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    api.create(&PostParams::default(), &c).await?;
    api.delete("f", &DeleteParams::default()).await?;
    let held = api.get("f").await?;
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(api.get_opt("f").await?.map(|c| c.name_any()), None);
    Ok(())
}

#[tokio::test]
async fn selectors_filter_lists_and_pagination_covers_everything() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, json!({}))?)
            .await?;
    }
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await?;
    let demo = api.list(&ListParams::default().labels("app=demo")).await?;
    assert_eq!(
        demo.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["a", "c"]
    );
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await?;
    assert_eq!(by_name.items.len(), 1);
    let page = api.list(&ListParams::default().limit(2)).await?;
    assert_eq!(page.items.len(), 2);
    let rest = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap_or("")),
        )
        .await?;
    assert_eq!(
        rest.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["c"]
    );
    Ok(())
}

#[tokio::test]
async fn injected_conflicts_fail_exactly_n_writes_and_are_logged() -> TestResult {
    let (server, client) = start().await?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("web", 1))?,
    )
    .await?;
    server.fail_next_writes::<Deployment>(Some("status"), 1);
    let patch = Patch::Merge(json!({"status": {"readyReplicas": 1}}));
    let first = api
        .patch_status("web", &PatchParams::default(), &patch)
        .await
        .err();
    assert_eq!(first.as_ref().and_then(api_code), Some(409));
    api.patch_status("web", &PatchParams::default(), &patch)
        .await?;
    let status_writes: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.verb == Verb::Patch && r.subresource.as_deref() == Some("status"))
        .map(|r| r.code)
        .collect();
    assert_eq!(status_writes, vec![409, 200]);
    Ok(())
}

#[tokio::test]
async fn discovery_lists_builtin_and_registered_groups() -> TestResult {
    let (_s, client) = start().await?;
    let discovery = kube::Discovery::new(client).run().await?;
    let apps = discovery
        .groups()
        .find(|g| g.name() == "apps")
        .map(|g| g.recommended_resources().len());
    assert!(apps.is_some_and(|n| n >= 3));
    assert!(discovery.has_group("coordination.k8s.io"));
    Ok(())
}

#[tokio::test]
async fn an_object_written_with_only_missing_owners_is_garbage_collected() -> TestResult {
    let (server, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut c = cm("late", json!({}))?;
    c.metadata.owner_references = Some(vec![serde_json::from_value(json!({"apiVersion": "v1",
        "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"}))?]);
    api.create(&PostParams::default(), &c).await?;
    assert!(server.list::<ConfigMap>(Some("default")).is_empty());
    Ok(())
}
