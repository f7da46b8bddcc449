//! Installs objects the way `kubectl apply --server-side` does: each object's kind resolved
//! through discovery, then server-side applied with one field manager.

use anyhow::Context;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::Client;
use serde_json::Value;

/// Field manager of everything the e2e suite applies.
pub const MANAGER: &str = "deepseek-e2e";

/// Server-side applies every object (in order); namespaced objects without a namespace go
/// to `default_namespace`.
pub async fn apply_all(
    client: &Client,
    objects: &[Value],
    default_namespace: &str,
) -> anyhow::Result<()> {
    let discovery = Discovery::new(client.clone()).run().await?;
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("{api_version}/{kind} is not served by the cluster"))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_namespace);
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
    }
    Ok(())
}

/// The documents of a multi-document YAML file of the checkout.
pub fn yaml_documents(relative: &str) -> anyhow::Result<Vec<Value>> {
    let text = crate::repo::read(relative)?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}
