//! Forwarding one request to its revision: pick the revision, try its backends in turn while
//! the failure is a connection failure (nothing was sent yet, so retrying is safe), stream the
//! answer back unbuffered, and hand WebSocket (or any `Upgrade`) connections over to a
//! byte-for-byte tunnel once the backend answers 101.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::{Finish, StatsBody};
use super::error::RouterError;
use super::guard;
use super::server::App;
use super::table::Table;

/// Response header naming the revision that served the request (debugging, tests).
pub const REVISION_HEADER: &str = "x-dsr-revision";

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

/// The fallback handler: everything that is not the router's own endpoint.
pub async fn proxy(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    if let Err(e) = guard::check(&app.origins, req.method(), req.uri().path(), req.headers()) {
        return e.into_response();
    }
    let table = app.routes.current();
    let revision = table.pick(req.headers());
    let deadline = tokio::time::Instant::now() + table.config.timeout;
    let finish = Finish {
        stats: app.stats.clone(),
        revision: table.names[revision].clone(),
        status: StatusCode::OK,
        started,
    };
    match forward(&app, &table, revision, req, deadline).await {
        Ok((resp, client_upgrade)) => respond(resp, client_upgrade, deadline, finish),
        Err(e) => {
            let status = e.status();
            app.stats
                .record(&finish.revision, status, Some(e.class()), started.elapsed());
            let mut resp = e.into_response();
            set_revision(resp.headers_mut(), &finish.revision);
            resp
        }
    }
}

type Forwarded = (Response<hyper::body::Incoming>, Option<OnUpgrade>);

async fn forward(
    app: &App,
    table: &Table,
    revision: usize,
    req: Request,
    deadline: tokio::time::Instant,
) -> Result<Forwarded, RouterError> {
    let name = &table.config.revisions[revision].name;
    let timeout = || RouterError::Timeout {
        revision: name.clone(),
        secs: table.config.timeout.as_secs(),
    };
    let (mut parts, body) = req.into_parts();
    let upgrade = upgrade_of(&parts.headers);
    let client_upgrade = upgrade
        .is_some()
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    // The request body is buffered (chat requests are small) so that a connection failure can
    // be retried on the next backend with the same bytes.
    let body = tokio::time::timeout_at(deadline, axum::body::to_bytes(body, app.max_body_bytes))
        .await
        .map_err(|_| timeout())?
        .map_err(|e| body_error(e, app.max_body_bytes))?;
    let headers = request_headers(&parts.headers, upgrade.as_ref());
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut tried = 0;
    let mut last = String::new();
    for base in table.backends(revision) {
        tried += 1;
        let out = build(&parts.method, base, &path, &headers, body.clone());
        let Ok(out) = out else {
            last = "cannot build the backend URL".into();
            continue;
        };
        match tokio::time::timeout_at(deadline, table.client.request(out)).await {
            Err(_) => return Err(timeout()),
            Ok(Ok(resp)) => return Ok((resp, client_upgrade)),
            Ok(Err(e)) if e.is_connect() => {
                tracing::warn!(revision = %name, backend = %base, error = %e, "backend refused; trying the next one");
                last = format!("{base}: {}", error_chain(&e));
            }
            Ok(Err(e)) => {
                return Err(RouterError::Upstream {
                    revision: name.clone(),
                    reason: error_chain(&e),
                })
            }
        }
    }
    Err(RouterError::NoBackend {
        revision: name.clone(),
        tried,
        last,
    })
}

fn body_error(e: axum::Error, limit: usize) -> RouterError {
    let too_large =
        std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
    if too_large {
        RouterError::BodyTooLarge { limit }
    } else {
        RouterError::BadBody(e.to_string())
    }
}

/// The error and its causes in one line ("client error (Connect): tcp connect error: ...").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn build(
    method: &http::Method,
    base: &Uri,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<http::Request<Full<Bytes>>, http::Error> {
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(path.parse()?);
    let uri = Uri::from_parts(parts)?;
    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(Full::new(body))?;
    *req.headers_mut() = headers.clone();
    Ok(req)
}

/// The `Upgrade` value when the client asks to switch protocols (WebSocket).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
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
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
fn request_headers(incoming: &HeaderMap, upgrade: Option<&HeaderValue>) -> HeaderMap {
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

fn set_revision(headers: &mut HeaderMap, revision: &str) {
    if let Ok(v) = HeaderValue::from_str(revision) {
        headers.insert(REVISION_HEADER, v);
    }
}

fn respond(
    mut resp: Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    deadline: tokio::time::Instant,
    mut finish: Finish,
) -> Response {
    finish.status = resp.status();
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return switch_protocols(resp, client_upgrade, finish);
    }
    strip_hop_by_hop(resp.headers_mut());
    let (mut parts, body) = resp.into_parts();
    set_revision(&mut parts.headers, &finish.revision);
    let body = AxumBody::new(StatsBody::new(body, deadline, finish));
    Response::from_parts(parts, body)
}

/// Answers the client's 101 with the backend's and splices the two upgraded connections.
/// The request counts as complete at the handshake; the tunnel has no timeout (a chat socket
/// lives as long as the conversation).
fn switch_protocols(
    mut resp: Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    finish: Finish,
) -> Response {
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let revision = finish.revision.clone();
    finish
        .stats
        .record(&revision, finish.status, None, finish.started.elapsed());
    if let Some(client_upgrade) = client_upgrade {
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, backend_upgrade) {
                Ok((client, backend)) => {
                    let (mut c, mut b) = (TokioIo::new(client), TokioIo::new(backend));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                        tracing::debug!(revision = %revision, error = %e, "upgraded connection closed");
                    }
                }
                Err(e) => tracing::warn!(revision = %revision, error = %e, "upgrade failed"),
            }
        });
    }
    let (mut parts, _) = resp.into_parts();
    set_revision(&mut parts.headers, &finish.revision);
    Response::from_parts(parts, AxumBody::empty())
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

    #[test]
    fn the_backend_url_keeps_the_path_and_query_of_the_request() {
        let base: Uri = "http://10.0.0.1:8000".parse().unwrap();
        let req = build(
            &http::Method::POST,
            &base,
            "/v1/chat/completions?x=1",
            &HeaderMap::new(),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(req.uri(), "http://10.0.0.1:8000/v1/chat/completions?x=1");
    }
}
