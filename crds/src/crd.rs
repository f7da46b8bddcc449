//! The CustomResourceDefinition document: generated from the types, printed by `crdgen` and
//! `deepseek-operator crd`, committed as `crds/deepseekdeployments.yaml` (drift-tested).
//!
//! Field descriptions come from the types' rustdoc, which may hold intra-doc links
//! (`[`Foo`]`, `[`Foo`](crate::foo)`): meaningless to `kubectl explain` readers, so they are
//! rewritten to plain code spans here, once, for every field.
//!
//! The resource's name is restricted in the schema (`metadata.name`: at most 52 characters, a
//! DNS-1035 label), the one part of the root `metadata` a CRD may restrict: the API server then
//! answers `metadata.name: Too long` or `metadata.name in body should match ...`. A CEL rule at
//! the root cannot name that field (a `fieldPath` into `metadata` is refused), so kubectl showed
//! `<nil>: Invalid value` for it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::spec::DeepSeekDeployment;

/// File name of the committed CRD, relative to the `crds/` directory.
pub const CRD_FILE: &str = "deepseekdeployments.yaml";

/// Header of the committed YAML, telling readers where it comes from.
pub const CRD_HEADER: &str =
    "# Generated from crds/src by `make crds` (crdgen). Do not edit by hand.\n";

/// The CRD object, with rustdoc links removed from its descriptions.
pub fn crd() -> CustomResourceDefinition {
    let generated = DeepSeekDeployment::crd();
    let Ok(mut value) = serde_json::to_value(&generated) else {
        return generated;
    };
    clean_descriptions(&mut value);
    restrict_name(&mut value);
    serde_json::from_value(value).unwrap_or(generated)
}

/// A DNS-1035 label: Services are named after the resource, and their names may not start
/// with a digit.
pub const NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Puts the name rules into every version's schema as `properties.metadata.properties.name`.
fn restrict_name(crd: &mut Value) {
    let Some(versions) = crd
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for version in versions {
        if let Some(props) = version
            .pointer_mut("/schema/openAPIV3Schema/properties")
            .and_then(Value::as_object_mut)
        {
            props.insert(
                "metadata".into(),
                serde_json::json!({
                    "type": "object",
                    "properties": {"name": {
                        "type": "string",
                        "maxLength": crate::MAX_NAME_LEN,
                        "pattern": NAME_PATTERN,
                    }},
                }),
            );
        }
    }
}

/// The CRD as a YAML document, with the generated-file header.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!("{CRD_HEADER}{}", serde_yaml::to_string(&crd())?))
}

/// Rewrites every `description` string in `value` with [`plain_description`].
fn clean_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "description" => *s = plain_description(s),
                    _ => clean_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_descriptions),
        _ => {}
    }
}

/// `[`Foo`]`, `[`Foo`](path)` and `[`Foo`][path]` become `` `Foo` `` (without `Self::` or a
/// `crate::...::` path); other text is unchanged.
pub fn plain_description(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let Some(end) = rest[start + 2..].find("`]").map(|i| start + 2 + i) else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 2..end];
        let name = name.rsplit("::").next().unwrap_or(name);
        out.push('`');
        out.push_str(name);
        out.push('`');
        rest = &rest[end + 2..];
        for (open, close) in [('(', ')'), ('[', ']')] {
            if rest.starts_with(open) {
                if let Some(i) = rest.find(close) {
                    rest = &rest[i + 1..];
                }
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intra_doc_links_become_code_spans() {
        assert_eq!(
            plain_description("see [`Self::refresh_display`] and [`Foo`](crate::foo::Foo)."),
            "see `refresh_display` and `Foo`."
        );
        assert_eq!(plain_description("a [`Bar`][b] b"), "a `Bar` b");
        assert_eq!(plain_description("plain `code` [x]"), "plain `code` [x]");
    }

    #[test]
    fn no_description_in_the_crd_leaks_a_rustdoc_link() {
        let yaml = crd_yaml().expect("crd serializes");
        for needle in ["[`", "Self::", "crate::"] {
            assert!(!yaml.contains(needle), "{needle} in the CRD");
        }
    }

    #[test]
    fn the_scale_subresource_names_a_selector_and_the_crd_is_not_in_all() {
        let crd = crd();
        let version = &crd.spec.versions[0];
        let scale = version
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .expect("scale subresource");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert!(crd.spec.names.categories.unwrap_or_default().is_empty());
    }

    #[test]
    fn runtime_env_is_a_list_map_keyed_by_name() {
        let v = serde_json::to_value(crd()).expect("json");
        let env = v
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/runtime/properties/env")
            .expect("env schema");
        assert_eq!(env["x-kubernetes-list-type"], "map");
        assert_eq!(
            env["x-kubernetes-list-map-keys"],
            serde_json::json!(["name"])
        );
    }
}
