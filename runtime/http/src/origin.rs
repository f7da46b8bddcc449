//! Which browser origins may open a WebSocket (or make any request the server checks): a
//! cross-site page can open a WebSocket to any server its visitor can reach, and the browser
//! sends no CORS preflight for it, so the server must look at `Origin` itself.
//!
//! Policy: a request without `Origin` is not from a browser page (curl, SDKs, the router) and is
//! allowed; a request with one is allowed only when that origin is listed (`*` lists all).
//! Origins compare as browsers send them, `scheme://host[:port]`, case-insensitively.

use axum::http::{header, HeaderMap};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    any: bool,
}

impl OriginPolicy {
    /// From the `--allowed-origins` list (entries trimmed, a trailing `/` ignored, empty ones
    /// dropped).
    pub fn new<S: AsRef<str>>(allowed: &[S]) -> Self {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|s| normalize(s.as_ref()))
            .filter(|s| !s.is_empty())
            .collect();
        Self {
            any: allowed.iter().any(|s| s == "*"),
            allowed,
        }
    }

    /// `Err(origin)` when the request carries an `Origin` that is not allowed.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if self.any || self.allowed.contains(&normalize(&origin)) {
            Ok(())
        } else {
            Err(origin)
        }
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether a request body is declared JSON (`application/json`, parameters allowed). A chat
/// POST must be: an HTML form can post `text/plain` or form-encoded bodies cross-site without a
/// preflight, and would burn compute on the victim's credentials.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            name,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn requests_without_origin_pass_and_unlisted_browser_origins_do_not() {
        let p = OriginPolicy::new(&["https://chat.example.com/"]);
        assert_eq!(p.check(&HeaderMap::new()), Ok(()));
        assert_eq!(
            p.check(&with(header::ORIGIN, "HTTPS://Chat.Example.com")),
            Ok(())
        );
        assert_eq!(
            p.check(&with(header::ORIGIN, "https://evil.example")),
            Err("https://evil.example".into())
        );
        let default = OriginPolicy::default();
        assert!(default.check(&with(header::ORIGIN, "null")).is_err());
        assert_eq!(
            OriginPolicy::new(&["*"]).check(&with(header::ORIGIN, "https://any.where")),
            Ok(())
        );
    }

    #[test]
    fn only_application_json_counts_as_json() {
        assert!(is_json(&with(header::CONTENT_TYPE, "application/json")));
        assert!(is_json(&with(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8"
        )));
        assert!(!is_json(&with(header::CONTENT_TYPE, "text/plain")));
        assert!(!is_json(&with(header::CONTENT_TYPE, "application/jsonx")));
        assert!(!is_json(&with(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json(&HeaderMap::new()));
    }
}
