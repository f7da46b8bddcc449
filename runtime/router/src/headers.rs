//! Which headers cross the router: hop-by-hop ones (RFC 9110 §7.6.1) stay behind, `Host` is
//! the backend's, and an upgrade request keeps what the upgrade needs.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The `Upgrade` value when the client asks to switch protocols (WebSocket).
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers, those named in `Connection`, and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for h in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(h);
    }
    headers.remove(header::UPGRADE);
}

/// The client's headers minus hop-by-hop ones and `Host` (the client sets the backend's);
/// an upgrade request keeps `Connection: upgrade` and its `Upgrade`.
pub fn request_headers(incoming: &HeaderMap, upgrade: Option<&HeaderValue>) -> HeaderMap {
    let mut h = incoming.clone();
    strip_hop_by_hop(&mut h);
    h.remove(header::HOST);
    // The body is re-sent whole; hyper sets Content-Length from it.
    h.remove(header::CONTENT_LENGTH);
    if let Some(u) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, u.clone());
    }
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_requests_lose_hop_by_hop_headers_and_host() {
        let h = headers(&[
            ("host", "router:8080"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "12"),
            ("authorization", "Bearer t"),
            ("x-session-id", "s1"),
        ]);
        let out = request_headers(&h, upgrade_of(&h).as_ref());
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["authorization", "x-session-id"]);
    }

    #[test]
    fn a_websocket_upgrade_keeps_its_upgrade_headers() {
        let h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let upgrade = upgrade_of(&h);
        assert_eq!(upgrade, Some(HeaderValue::from_static("websocket")));
        let out = request_headers(&h, upgrade.as_ref());
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
        assert!(out.contains_key("sec-websocket-key"));
    }

    #[test]
    fn an_upgrade_header_without_connection_upgrade_is_not_an_upgrade() {
        let h = headers(&[("upgrade", "websocket")]);
        assert_eq!(upgrade_of(&h), None);
        assert!(!request_headers(&h, None).contains_key("upgrade"));
    }
}
