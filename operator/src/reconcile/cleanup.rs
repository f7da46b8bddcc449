//! Pruning: children this DeepSeekDeployment owns (controller owner reference to its uid and
//! the operator's labels) that are no longer desired, e.g. the Deployment of a replaced
//! revision, are deleted. Objects without our owner reference are never touched.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

use crate::desired::ChildKind;
use crate::error::Result;
use crate::reconcile::apply::ChildRef;
use crate::reconcile::labels;

/// Deletes owned children not in `keep`; returns what was deleted.
pub async fn prune(
    client: &Client,
    namespace: &str,
    owner_name: &str,
    owner_uid: &str,
    keep: &BTreeSet<ChildRef>,
) -> Result<Vec<ChildRef>> {
    // Every kind the builders can produce, so a kind that stops being desired is still pruned
    // (and only those: the operator's RBAC covers exactly these).
    let mut kinds: BTreeSet<(String, String)> = ChildKind::ALL
        .iter()
        .map(|k| (k.api_version().to_string(), k.kind().to_string()))
        .collect();
    kinds.extend(keep.iter().map(|c| (c.api_version.clone(), c.kind.clone())));
    let lp = ListParams::default().labels(&labels::selector_for(owner_name));
    let mut deleted = Vec::new();
    for (api_version, kind) in kinds {
        let probe = ChildRef {
            api_version,
            kind,
            name: String::new(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &probe.api_resource());
        let list = match api.list(&lp).await {
            Ok(l) => l,
            // The kind's API is not served: nothing of it can exist.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for obj in list.items {
            let owned = obj
                .owner_references()
                .iter()
                .any(|o| o.uid == owner_uid && o.controller == Some(true));
            let child = ChildRef {
                name: obj.name_any(),
                ..probe.clone()
            };
            if !owned || keep.contains(&child) {
                continue;
            }
            tracing::info!(kind = %child.kind, child = %child.name, "pruning child no longer desired");
            match api.delete(&child.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(child),
                Err(kube::Error::Api(s)) if s.code == 404 => deleted.push(child),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(deleted)
}
