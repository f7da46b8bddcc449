//! Pruning: children this DeepSeekDeployment owns (controller owner reference to its uid and
//! the operator's labels) that are no longer desired, e.g. the Deployment of a replaced
//! revision, are deleted. Objects without our owner reference are never touched.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

use crate::cache::{CachedChild, Stores};
use crate::desired::ChildKind;
use crate::error::Result;
use crate::reconcile::apply::ChildRef;
use crate::reconcile::labels;

/// Where prune finds the existing children: the watch caches for the kinds they hold, and a
/// list call for the others only when `list_uncached` (a full round).
pub struct Sources<'a> {
    pub stores: Option<&'a Stores>,
    pub list_uncached: bool,
}

/// Deletes owned children not in `keep`; returns what was deleted.
pub async fn prune(
    client: &Client,
    namespace: &str,
    owner_name: &str,
    owner_uid: &str,
    keep: &BTreeSet<ChildRef>,
    sources: Sources<'_>,
) -> Result<Vec<ChildRef>> {
    // Every kind the builders can produce, so a kind that stops being desired is still pruned
    // (and only those: the operator's RBAC covers exactly these).
    let kinds: BTreeSet<ChildKind> = ChildKind::ALL.into_iter().collect();
    let lp = ListParams::default().labels(&labels::selector_for(owner_name));
    let sel = labels::selector_map(owner_name);
    let mut deleted = Vec::new();
    for kind in kinds {
        let probe = ChildRef {
            api_version: kind.api_version().to_string(),
            kind: kind.kind().to_string(),
            name: String::new(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &probe.api_resource());
        let cached = sources
            .stores
            .and_then(|s| s.children(kind, namespace, &sel));
        let existing: Vec<CachedChild> = match cached {
            Some(children) => children,
            None if !sources.list_uncached => continue,
            None => match api.list(&lp).await {
                Ok(l) => l
                    .items
                    .iter()
                    .map(|o| CachedChild {
                        name: o.name_any(),
                        controller_uid: o
                            .owner_references()
                            .iter()
                            .find(|r| r.controller == Some(true))
                            .map(|r| r.uid.clone()),
                    })
                    .collect(),
                // The kind's API is not served: nothing of it can exist.
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            },
        };
        for obj in existing {
            let owned = obj.controller_uid.as_deref() == Some(owner_uid);
            let child = ChildRef {
                name: obj.name,
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
