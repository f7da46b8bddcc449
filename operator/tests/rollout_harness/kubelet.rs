//! The "kubelet" of the rollout cluster: plays the deployment controller, kubelet and cluster
//! DNS for the fake API server (Deployments become ready, backends start, the routes ConfigMap
//! becomes a local routes file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepseek_operator::desired::router::{routes_name, ROUTES_KEY};
use deepseek_operator::reconcile::labels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

use super::{start_backend, Backend, NAME, NS};

/// Plays the deployment controller, kubelet and cluster DNS: Deployments become ready at
/// their replica count (a backend process per revision), and the routes ConfigMap becomes a
/// local routes file whose backends are those processes.
pub(super) async fn kubelet(
    client: kube::Client,
    backends: Arc<Mutex<BTreeMap<String, Backend>>>,
    routes_file: PathBuf,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let configmaps: Api<ConfigMap> = Api::namespaced(client, NS);
    let mut last_routes = String::new();
    loop {
        if let Ok(list) = deployments.list(&Default::default()).await {
            for d in list.items {
                mark_ready(&deployments, &d, &backends).await;
            }
        }
        if let Ok(Some(cm)) = configmaps.get_opt(&routes_name(NAME)).await {
            let yaml = cm
                .data
                .as_ref()
                .and_then(|d| d.get(ROUTES_KEY))
                .cloned()
                .unwrap_or_default();
            if let Some(local) = localize(&yaml, &backends) {
                if local != last_routes {
                    let tmp = routes_file.with_extension("tmp");
                    if std::fs::write(&tmp, &local).is_ok()
                        && std::fs::rename(&tmp, &routes_file).is_ok()
                    {
                        last_routes = local;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mark_ready(
    api: &Api<Deployment>,
    d: &Deployment,
    backends: &Arc<Mutex<BTreeMap<String, Backend>>>,
) {
    let want = d.spec.replicas.unwrap_or(1);
    if let Some(revision) = d.labels().get(labels::REVISION).cloned() {
        let image = d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let known = backends
            .lock()
            .map(|b| b.contains_key(&revision))
            .unwrap_or(true);
        if !known && want > 0 {
            if let Ok(b) = start_backend(revision.clone(), image.contains("bad")).await {
                if let Ok(mut map) = backends.lock() {
                    map.insert(revision, b);
                }
            }
        }
    }
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready != want {
        let status =
            json!({"status": {"replicas": want, "readyReplicas": want, "availableReplicas": want}});
        let _ = api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await;
    }
}

/// The routes file with every revision's backends replaced by its local process (cluster
/// DNS, played by the test); `None` until every routed revision has a backend.
fn localize(yaml: &str, backends: &Arc<Mutex<BTreeMap<String, Backend>>>) -> Option<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
    let map = backends.lock().ok()?;
    for rev in doc.get_mut("revisions")?.as_sequence_mut()? {
        let name = rev.get("name")?.as_str()?.to_string();
        let url = map.get(&name)?.url.clone();
        rev["backends"] = serde_yaml::Value::Sequence(vec![url.into()]);
    }
    serde_yaml::to_string(&doc).ok()
}
