//! Offline rendering: DeepSeekDeployment YAML in, the exact children the controller would apply
//! out, as a `---` separated YAML stream with a stable key order (apiVersion, kind, metadata
//! first, the rest sorted) so output is byte-identical across runs and builds.

use deepseek_crds::{DeepSeekDeployment, API_VERSION, KIND};
use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

use crate::desired::{self, BuildConfig, BuildError};

/// Namespace assumed when the input has none (what `kubectl apply` would use by default).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Owner uid written when the input has none: the real one is only known inside a cluster.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Why an input could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Not YAML, or not a DeepSeekDeployment shape.
    #[error("document {index}: {source}")]
    Parse {
        index: usize,
        source: serde_yaml::Error,
    },
    /// A document of another kind.
    #[error("document {index}: expected {API_VERSION} {KIND}, found {found}")]
    WrongKind { index: usize, found: String },
    /// No document at all.
    #[error("no DeepSeekDeployment in the input")]
    Empty,
    /// The spec is invalid (or metadata incomplete).
    #[error("{name}: {source}")]
    Build { name: String, source: BuildError },
    /// Output serialization failed.
    #[error("cannot write YAML: {0}")]
    Write(#[from] serde_yaml::Error),
}

/// Parses every DeepSeekDeployment of a YAML stream, filling the namespace and uid that only a
/// cluster would set.
pub fn parse(input: &str) -> Result<Vec<DeepSeekDeployment>, RenderError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = serde::Deserialize::deserialize(document)
            .map_err(|source| RenderError::Parse { index, source })?;
        let value: Yaml = value;
        if value.is_null() {
            continue;
        }
        let field = |key: &str| {
            value
                .get(key)
                .and_then(Yaml::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version != API_VERSION || kind != KIND {
            return Err(RenderError::WrongKind {
                index,
                found: format!("{api_version} {kind}"),
            });
        }
        let mut dsd: DeepSeekDeployment =
            serde_yaml::from_value(value).map_err(|source| RenderError::Parse { index, source })?;
        dsd.metadata
            .namespace
            .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string());
        dsd.metadata
            .uid
            .get_or_insert_with(|| PLACEHOLDER_UID.to_string());
        out.push(dsd);
    }
    if out.is_empty() {
        return Err(RenderError::Empty);
    }
    Ok(out)
}

/// Renders every DeepSeekDeployment of `input` into the YAML stream of its children.
pub fn render(input: &str, cfg: &BuildConfig) -> Result<String, RenderError> {
    let mut out = String::new();
    for dsd in parse(input)? {
        let name = dsd.metadata.name.clone().unwrap_or_default();
        let children =
            desired::build(&dsd, cfg).map_err(|source| RenderError::Build { name, source })?;
        for child in children {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&canonical(&child.object, true))?);
        }
    }
    Ok(out)
}

/// Objects as a YAML stream in canonical key order (for `manifests` too).
pub fn to_yaml_stream(objects: &[Value]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&canonical(object, true))?);
    }
    Ok(out)
}

/// Key order: at the top level apiVersion, kind, metadata first; everywhere else sorted.
fn canonical(value: &Value, top: bool) -> Yaml {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            let rank = |k: &str| match (top, k) {
                (true, "apiVersion") => 0,
                (true, "kind") => 1,
                (true, "metadata") => 2,
                _ => 3,
            };
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
            let mut mapping = Mapping::new();
            for key in keys {
                mapping.insert(Yaml::String(key.clone()), canonical(&map[key], false));
            }
            Yaml::Mapping(mapping)
        }
        Value::Array(items) => Yaml::Sequence(items.iter().map(|v| canonical(v, false)).collect()),
        Value::String(s) => Yaml::String(s.clone()),
        Value::Bool(b) => Yaml::Bool(*b),
        Value::Null => Yaml::Null,
        Value::Number(n) => serde_yaml::to_value(n).unwrap_or(Yaml::Null),
    }
}
