//! The CustomResourceDefinition document: generated from the types, printed by `crdgen` and
//! `deepseek-operator crd`, committed as `crds/deepseekdeployments.yaml` (drift-tested).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::spec::DeepSeekDeployment;

/// File name of the committed CRD, relative to the `crds/` directory.
pub const CRD_FILE: &str = "deepseekdeployments.yaml";

/// Header of the committed YAML, telling readers where it comes from.
pub const CRD_HEADER: &str =
    "# Generated from crds/src by `make crds` (crdgen). Do not edit by hand.\n";

/// The CRD object.
pub fn crd() -> CustomResourceDefinition {
    DeepSeekDeployment::crd()
}

/// The CRD as a YAML document, with the generated-file header.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!("{CRD_HEADER}{}", serde_yaml::to_string(&crd())?))
}
