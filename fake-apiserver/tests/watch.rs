//! Watch semantics of the fake API server, through a real `kube::Client` and kube-runtime.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn watch_replays_events_after_a_resource_version_and_reports_gone_when_compacted(
) -> TestResult {
    let (server, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let from = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    api.create(&PostParams::default(), &cm("a", json!({"k": "1"}))?)
        .await?;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await?;
    api.delete("a", &DeleteParams::default()).await?;
    let wp = WatchParams::default().timeout(2);
    let events: Vec<_> = api.watch(&wp, &from).await?.take(3).try_collect().await?;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        })
        .collect();
    assert_eq!(kinds, vec!["ADDED", "MODIFIED", "DELETED"]);

    server.compact_history();
    let mut stream = api.watch(&wp, &from).await?.boxed();
    let first = stream.try_next().await?;
    assert!(matches!(first, Some(WatchEvent::Error(e)) if e.code == 410));
    Ok(())
}

#[tokio::test]
async fn kube_runtime_watcher_lists_then_follows_changes_in_both_list_modes() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("before", json!({}))?)
        .await?;
    for cfg in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut stream = watcher(api.clone(), cfg).boxed();
        let mut seen_init = false;
        let name = format!("after-{}", uuid_like());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ev = tokio::time::timeout_at(deadline, stream.try_next()).await??;
            match ev {
                Some(watcher::Event::InitApply(o)) if o.name_any() == "before" => seen_init = true,
                Some(watcher::Event::InitDone) => {
                    api.create(&PostParams::default(), &cm(&name, json!({}))?)
                        .await?;
                }
                Some(watcher::Event::Apply(o)) if o.name_any() == name => break,
                Some(_) => {}
                None => anyhow::bail!("watcher stream ended"),
            }
        }
        assert!(seen_init);
    }
    Ok(())
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn kind_of(e: &WatchEvent<ConfigMap>) -> &'static str {
    match e {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(_) => "BOOKMARK",
        WatchEvent::Error(_) => "ERROR",
    }
}

#[tokio::test]
async fn a_label_watch_sees_objects_leave_and_enter_its_selection() -> TestResult {
    let (_s, client) = start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let from = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    api.create(&PostParams::default(), &cm("a", json!({}))?)
        .await?;
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    api.patch("a", &PatchParams::default(), &relabel("other"))
        .await?;
    api.patch("a", &PatchParams::default(), &relabel("demo"))
        .await?;
    let wp = WatchParams::default().labels("app=demo").timeout(2);
    let events: Vec<_> = api.watch(&wp, &from).await?.take(3).try_collect().await?;
    let kinds: Vec<&str> = events.iter().map(kind_of).collect();
    assert_eq!(kinds, vec!["ADDED", "DELETED", "ADDED"]);
    Ok(())
}

#[tokio::test]
async fn watches_send_bookmarks_when_asked_and_end_at_their_timeout() -> TestResult {
    let (server, client) = start().await?;
    server.set_bookmark_interval(Duration::from_millis(100));
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut wp = WatchParams::default().timeout(1);
    wp.bookmarks = true;
    let events: Vec<_> = api.watch(&wp, &rv).await?.try_collect().await?;
    assert!(events.iter().any(|e| kind_of(e) == "BOOKMARK"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    Ok(())
}
