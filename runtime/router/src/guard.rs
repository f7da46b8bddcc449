//! Checks the router makes before forwarding, so a cross-site page is stopped at the cluster's
//! entry point: WebSocket upgrades must come from an allowed Origin (or none), and POSTs to the
//! OpenAI API must be declared `application/json` (see `deepseek_http::origin`).

use http::{header, HeaderMap, Method};

use super::error::RouterError;
use deepseek_http::OriginPolicy;

/// `Err` when the request must not reach a backend.
pub fn check(
    origins: &OriginPolicy,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), RouterError> {
    if headers.contains_key(header::UPGRADE) {
        origins
            .check(headers)
            .map_err(RouterError::OriginNotAllowed)?;
    }
    if method == Method::POST && path.starts_with("/v1/") && !deepseek_http::is_json(headers) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .map_or("(none)".into(), |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            });
        return Err(RouterError::UnsupportedMediaType(ct));
    }
    Ok(())
}
