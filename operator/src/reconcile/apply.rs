//! Server-side apply of the desired children under ONE field manager (`deepseek-operator`,
//! forced: the operator is the authority on the fields it sets). Kinds whose API is not
//! served (e.g. monitoring.coreos.com without the Prometheus operator) are skipped and
//! reported, not treated as failures.

use std::collections::BTreeSet;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const FIELD_MANAGER: &str = crate::desired::naming::FIELD_MANAGER;

/// API groups that may legitimately be missing from a cluster.
pub const OPTIONAL_GROUPS: &[&str] = &["monitoring.coreos.com"];

/// Identity of one child: what prune compares against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl ChildRef {
    pub fn of(obj: &Value) -> Result<Self> {
        let s = |v: &Value| v.as_str().map(str::to_string);
        match (
            s(&obj["apiVersion"]),
            s(&obj["kind"]),
            s(&obj["metadata"]["name"]),
        ) {
            (Some(api_version), Some(kind), Some(name)) => Ok(Self {
                api_version,
                kind,
                name,
            }),
            _ => Err(Error::Desired(format!(
                "desired object lacks apiVersion/kind/name: {obj}"
            ))),
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        let (group, version) = self
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", &self.api_version));
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &self.kind))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub applied: BTreeSet<ChildRef>,
    pub skipped_missing_api: BTreeSet<ChildRef>,
}

pub async fn apply_all(
    client: &Client,
    namespace: &str,
    objects: &[Value],
) -> Result<ApplyOutcome> {
    let mut out = ApplyOutcome::default();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for obj in objects {
        let child = ChildRef::of(obj)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &child.api_resource());
        match api.patch(&child.name, &pp, &Patch::Apply(obj)).await {
            Ok(_) => {
                out.applied.insert(child);
            }
            Err(kube::Error::Api(s)) if s.code == 404 && is_optional(&child) => {
                tracing::debug!(kind = %child.kind, name = %child.name, "API not served; skipping optional child");
                out.skipped_missing_api.insert(child);
            }
            Err(source) => {
                return Err(Error::Apply {
                    kind: child.kind.clone(),
                    name: child.name.clone(),
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// A digest of the objects to apply: equal digests mean an apply would send the same bodies.
pub fn digest(objects: &[Value]) -> String {
    let bytes = serde_json::to_vec(objects).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn is_optional(c: &ChildRef) -> bool {
    OPTIONAL_GROUPS
        .iter()
        .any(|g| c.api_version.starts_with(&format!("{g}/")))
}
