//! Replicas of the revisions the spec no longer describes (the stable one during a canary, a
//! manual rollback target, history kept at zero): their Deployments were applied when they
//! were the spec's revision, so only `spec.replicas` is patched, as the rollout decided.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::desired::naming;
use crate::error::Result;
use crate::status::Observed;

/// Patches every kept revision other than `spec_revision` whose replicas differ; returns the
/// revisions whose Deployment is missing (a rollback target pruned by hand, say).
pub async fn scale_kept(
    client: &Client,
    namespace: &str,
    dsd_name: &str,
    spec_revision: &str,
    replicas: &BTreeMap<String, i32>,
    observed: &Observed,
) -> Result<Vec<String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pp = PatchParams {
        field_manager: Some(naming::FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let mut missing = Vec::new();
    for (hash, want) in replicas.iter().filter(|(h, _)| *h != spec_revision) {
        let name = naming::revision_object_name(dsd_name, hash);
        let found = observed
            .deployments
            .iter()
            .find(|d| d.revision.as_deref() == Some(hash.as_str()) && d.name == name);
        match found {
            Some(d) if d.replicas == *want => {}
            Some(_) => {
                tracing::info!(deployment = %name, replicas = want, "scaling kept revision");
                let patch = json!({"spec": {"replicas": want}});
                api.patch(&name, &pp, &Patch::Merge(&patch)).await?;
            }
            None if *want > 0 => missing.push(hash.clone()),
            None => {}
        }
    }
    Ok(missing)
}
