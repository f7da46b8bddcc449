//! The chat Service apps call (`http://NAME.NAMESPACE.svc`). It fronts the router
//! ([`ServiceTarget::Router`]), which splits requests between revisions by exact weights; a
//! revision's own pods can still be targeted directly.

use std::collections::BTreeMap;

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// What the chat Service sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceTarget {
    /// The runtime pods of this revision.
    Revision(String),
    /// The router pods (weighted split between revisions).
    Router,
}

impl ServiceTarget {
    fn selector(&self, dsd_name: &str) -> BTreeMap<String, String> {
        match self {
            Self::Revision(revision) => naming::revision_selector(dsd_name, revision),
            Self::Router => super::router::router_selector(dsd_name),
        }
    }
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    _cfg: &BuildConfig,
    target: &ServiceTarget,
) -> Result<DesiredChild, BuildError> {
    let name = naming::service_name(&owner.name);
    let service = Service {
        metadata: owner.child_meta(name.clone(), naming::common_labels(&owner.name)),
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.as_str().into()),
            selector: Some(target.selector(&owner.name)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: spec.service.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    owner.child(ChildKind::Service, &name, &service)
}
