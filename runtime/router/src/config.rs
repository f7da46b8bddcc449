//! The route file (`routes.yaml`, the contract in the README's Router section): parsed once
//! into a validated [`RouteConfig`], so the proxy never meets a weight sum other than 100 or a
//! backend URL it cannot dial.

use std::collections::HashSet;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use thiserror::Error;

pub const DEFAULT_SESSION_HEADER: &str = "x-session-id";
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2000;
/// Weights are percentages of traffic.
pub const TOTAL_WEIGHT: u32 = 100;

/// The file as written. Unknown fields are ignored so an operator that adds fields does not
/// break older routers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    /// The operator's identity of this table (`routes_generation` in the operator).
    generation: Option<String>,
    session_header: Option<String>,
    timeout_seconds: Option<u64>,
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    revisions: Vec<RawRevision>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawRevision {
    name: String,
    weight: u32,
    #[serde(default)]
    backends: Vec<String>,
}

/// One revision: its share of traffic and the base URLs of its pods' Service(s).
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub name: String,
    pub weight: u32,
    /// Scheme and authority only (`http://host:port`); request paths are appended as sent.
    pub backends: Vec<Uri>,
}

/// A validated route table.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// The table's identity as the operator wrote it, reported back in `/admin/stats` as
    /// `routesGeneration` so the operator knows when every router has left a revision behind.
    pub generation: Option<String>,
    /// Lower-case header name (HTTP header names are case-insensitive).
    pub session_header: http::HeaderName,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub revisions: Vec<Revision>,
}

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("the route file is not valid YAML for routes: {0}")]
    Yaml(String),
    #[error("the route file lists no revisions")]
    NoRevisions,
    #[error("a revision has an empty name")]
    EmptyName,
    #[error("revision '{0}' is listed twice")]
    DuplicateRevision(String),
    #[error("revision '{name}' has weight {weight}; weights are 0..=100")]
    WeightOutOfRange { name: String, weight: u32 },
    #[error("the weights sum to {0}; they must sum to 100")]
    WeightSum(u32),
    #[error("revision '{0}' has no backends")]
    NoBackends(String),
    #[error(
        "revision '{name}' has backend '{url}' that is not an http://host[:port] URL: {reason}"
    )]
    BadBackend {
        name: String,
        url: String,
        reason: String,
    },
    #[error("sessionHeader '{0}' is not a valid HTTP header name")]
    BadSessionHeader(String),
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
}

impl ConfigError {
    /// Stable label for logs and the reload metric.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Yaml(_) => "yaml",
            ConfigError::NoRevisions => "no_revisions",
            ConfigError::EmptyName => "empty_name",
            ConfigError::DuplicateRevision(_) => "duplicate_revision",
            ConfigError::WeightOutOfRange { .. } => "weight_out_of_range",
            ConfigError::WeightSum(_) => "weight_sum",
            ConfigError::NoBackends(_) => "no_backends",
            ConfigError::BadBackend { .. } => "bad_backend",
            ConfigError::BadSessionHeader(_) => "bad_session_header",
            ConfigError::ZeroTimeout(_) => "zero_timeout",
        }
    }
}

impl RouteConfig {
    /// Parses and validates the YAML text of a route file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let header = raw
            .session_header
            .unwrap_or_else(|| DEFAULT_SESSION_HEADER.to_string());
        let session_header = http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
            .map_err(|_| ConfigError::BadSessionHeader(header.clone()))?;
        let timeout_s = raw.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        if timeout_s == 0 {
            return Err(ConfigError::ZeroTimeout("timeoutSeconds"));
        }
        let connect_ms = raw.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        if connect_ms == 0 {
            return Err(ConfigError::ZeroTimeout("connectTimeoutMs"));
        }
        Ok(Self {
            generation: raw.generation.filter(|g| !g.trim().is_empty()),
            session_header,
            timeout: Duration::from_secs(timeout_s),
            connect_timeout: Duration::from_millis(connect_ms),
            revisions: revisions(raw.revisions)?,
        })
    }
}

fn revisions(raw: Vec<RawRevision>) -> Result<Vec<Revision>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::NoRevisions);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        if r.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if !seen.insert(r.name.clone()) {
            return Err(ConfigError::DuplicateRevision(r.name));
        }
        if r.weight > TOTAL_WEIGHT {
            return Err(ConfigError::WeightOutOfRange {
                name: r.name,
                weight: r.weight,
            });
        }
        if r.backends.is_empty() {
            return Err(ConfigError::NoBackends(r.name));
        }
        let backends = r
            .backends
            .iter()
            .map(|url| backend_uri(&r.name, url))
            .collect::<Result<_, _>>()?;
        out.push(Revision {
            name: r.name,
            weight: r.weight,
            backends,
        });
    }
    let sum: u32 = out.iter().map(|r| r.weight).sum();
    if sum != TOTAL_WEIGHT {
        return Err(ConfigError::WeightSum(sum));
    }
    Ok(out)
}

/// Only plain HTTP: backends are in-cluster Services; TLS ends at the router or the ingress.
fn backend_uri(name: &str, url: &str) -> Result<Uri, ConfigError> {
    let bad = |reason: &str| ConfigError::BadBackend {
        name: name.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .trim_end_matches('/')
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("the scheme must be http"));
    }
    if uri.authority().is_none() {
        return Err(bad("no host"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("a base URL has no path"));
    }
    Ok(uri)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FULL: &str = r#"
generation: 3f2a9b1c0d4e5f60
sessionHeader: X-Conversation
timeoutSeconds: 30
connectTimeoutMs: 500
revisions:
  - name: 7f3a9c1e
    weight: 90
    backends: ["http://dsd-demo-7f3a9c1e.default.svc:8000", "http://10.0.0.2:8000/"]
  - name: b21d004a
    weight: 10
    backends: ["http://dsd-demo-b21d004a.default.svc:8000"]
"#;

    fn two(w1: u32, w2: u32) -> String {
        format!(
            "revisions:\n  - {{name: a, weight: {w1}, backends: [\"http://a:1\"]}}\n  - {{name: b, weight: {w2}, backends: [\"http://b:1\"]}}\n"
        )
    }

    #[test]
    fn parses_the_contract_example_with_every_field() {
        let c = RouteConfig::parse(FULL).unwrap();
        assert_eq!(c.session_header.as_str(), "x-conversation");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.revisions.len(), 2);
        assert_eq!(c.revisions[0].name, "7f3a9c1e");
        assert_eq!(c.revisions[0].weight, 90);
        assert_eq!(
            c.revisions[0].backends[1].to_string(),
            "http://10.0.0.2:8000/"
        );
    }

    #[test]
    fn keeps_the_generation_the_operator_wrote_and_none_when_absent() {
        assert_eq!(
            RouteConfig::parse(FULL).unwrap().generation.as_deref(),
            Some("3f2a9b1c0d4e5f60")
        );
        assert_eq!(RouteConfig::parse(&two(50, 50)).unwrap().generation, None);
    }

    #[test]
    fn fills_defaults_when_only_revisions_are_given() {
        let c = RouteConfig::parse(&two(100, 0)).unwrap();
        assert_eq!(c.session_header.as_str(), DEFAULT_SESSION_HEADER);
        assert_eq!(c.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECONDS));
        assert_eq!(
            c.connect_timeout,
            Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS)
        );
    }

    #[test]
    fn rejects_weights_that_do_not_sum_to_one_hundred() {
        assert_eq!(
            RouteConfig::parse(&two(10, 80)),
            Err(ConfigError::WeightSum(90))
        );
    }

    #[test]
    fn rejects_a_weight_above_one_hundred() {
        assert_eq!(
            RouteConfig::parse(&two(150, 0)),
            Err(ConfigError::WeightOutOfRange {
                name: "a".into(),
                weight: 150
            })
        );
    }

    #[test]
    fn rejects_an_empty_revision_list() {
        assert_eq!(
            RouteConfig::parse("revisions: []"),
            Err(ConfigError::NoRevisions)
        );
    }

    #[test]
    fn rejects_a_revision_listed_twice() {
        let text = "revisions:\n  - {name: a, weight: 50, backends: [\"http://a:1\"]}\n  - {name: a, weight: 50, backends: [\"http://a:2\"]}\n";
        assert_eq!(
            RouteConfig::parse(text),
            Err(ConfigError::DuplicateRevision("a".into()))
        );
    }

    #[test]
    fn rejects_a_revision_without_backends() {
        let text = "revisions:\n  - {name: a, weight: 100, backends: []}\n";
        assert_eq!(
            RouteConfig::parse(text),
            Err(ConfigError::NoBackends("a".into()))
        );
    }

    #[test]
    fn rejects_an_https_or_path_carrying_backend() {
        for url in ["https://a:443", "http://a:1/v1", "a:1"] {
            let text = format!("revisions:\n  - {{name: a, weight: 100, backends: [\"{url}\"]}}\n");
            let err = RouteConfig::parse(&text).unwrap_err();
            assert_eq!(err.code(), "bad_backend", "{url}: {err}");
        }
    }

    #[test]
    fn rejects_zero_timeouts() {
        let text = format!("timeoutSeconds: 0\n{}", two(50, 50));
        assert_eq!(
            RouteConfig::parse(&text),
            Err(ConfigError::ZeroTimeout("timeoutSeconds"))
        );
    }

    #[test]
    fn rejects_text_that_is_not_a_route_file() {
        let err = RouteConfig::parse("revisions: 3").unwrap_err();
        assert_eq!(err.code(), "yaml");
    }

    #[test]
    fn ignores_unknown_fields() {
        let text = format!("futureField: 1\n{}", two(50, 50));
        assert!(RouteConfig::parse(&text).is_ok());
    }
}
