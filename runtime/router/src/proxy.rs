//! Forwarding one request to its revision: admit it (concurrency cap, body budget), pick the
//! revision, try its available backends in turn while the failure is a connection failure
//! (nothing was sent yet, so retrying is safe) or a 5xx answer (the buffered body can be sent
//! again), report each backend's outcome to its health, stream the answer back unbuffered, and
//! hand WebSocket (or any `Upgrade`) connections over to a tunnel once the backend answers 101.

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

use super::admission;
use super::body::{Finish, Served, StatsBody};
use super::error::RouterError;
use super::server::App;
use super::table::Table;
use super::tunnel;
use deepseek_http::Drain;

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
    let Some(table) = app.routes.current() else {
        app.stats
            .metrics
            .refused
            .with_label_values(&["no_routes"])
            .inc();
        return RouterError::NoRoutes.into_response();
    };
    let permit = match app.admission.admit() {
        Ok(p) => p,
        Err(e) => {
            admission::discard(req.into_body(), app.max_body_bytes).await;
            return e.into_response();
        }
    };
    let revision = table.pick(req.headers());
    let deadline = tokio::time::Instant::now() + table.config.timeout;
    let drain = req.extensions().get::<Drain>().cloned();
    let finish = Finish {
        stats: app.stats.clone(),
        revision: table.names[revision].clone(),
        status: StatusCode::OK,
        started,
        served: None,
        permit: Some(permit),
    };
    match forward(&app, &table, revision, req, deadline).await {
        Ok(forwarded) => {
            let served = Served {
                health: app.health.clone(),
                table: table.clone(),
                revision,
                backend: forwarded.backend.clone(),
            };
            respond(forwarded, served, deadline, finish, drain)
        }
        Err(e) => {
            let status = e.status();
            if let Some(class) = e.class() {
                app.stats
                    .record(&finish.revision, status, Some(class), started.elapsed());
            }
            let mut resp = e.into_response();
            set_revision(resp.headers_mut(), &finish.revision);
            resp
        }
    }
}

struct Forwarded {
    resp: Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    websocket: bool,
    backend: Uri,
}

/// Statuses worth one more backend of the same revision: the backend failed without doing the
/// work (the request body is buffered, so it can be sent again).
fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

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
    let websocket = upgrade
        .as_ref()
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let client_upgrade = upgrade
        .is_some()
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The request body is buffered (chat requests are small) so that a connection failure can
    // be retried on the next backend with the same bytes; it holds its share of the body
    // budget until the backend has answered.
    let (body, _budget) = tokio::time::timeout_at(
        deadline,
        app.admission.buffer(body, declared, app.max_body_bytes),
    )
    .await
    .map_err(|_| timeout())??;
    let headers = request_headers(&parts.headers, upgrade.as_ref());
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let backends = table.backends(revision);
    let order = app.health.order(backends, table.next_start(revision));
    let count = order.len();
    let mut last = String::new();
    for (i, base) in order.into_iter().enumerate() {
        let failed = || app.health.failure(name, backends, base);
        let Ok(out) = build(&parts.method, base, &path, &headers, body.clone()) else {
            last = "cannot build the backend URL".into();
            continue;
        };
        match tokio::time::timeout_at(deadline, table.client.request(out)).await {
            Err(_) => {
                failed();
                return Err(timeout());
            }
            Ok(Ok(resp))
                if app.retry_5xx
                    && upgrade.is_none()
                    && retryable(resp.status())
                    && i + 1 < count =>
            {
                failed();
                tracing::warn!(revision = %name, backend = %base, status = %resp.status(), "backend failed the request; trying the next one");
                last = format!("{base}: answered {}", resp.status());
            }
            Ok(Ok(resp)) => {
                return Ok(Forwarded {
                    resp,
                    client_upgrade,
                    websocket,
                    backend: base.clone(),
                })
            }
            Ok(Err(e)) if e.is_connect() => {
                failed();
                tracing::warn!(revision = %name, backend = %base, error = %e, "backend refused; trying the next one");
                last = format!("{base}: {}", error_chain(&e));
            }
            Ok(Err(e)) => {
                failed();
                return Err(RouterError::Upstream {
                    revision: name.clone(),
                    reason: error_chain(&e),
                });
            }
        }
    }
    Err(RouterError::NoBackend {
        revision: name.clone(),
        tried: count,
        last,
    })
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
    forwarded: Forwarded,
    served: Served,
    deadline: tokio::time::Instant,
    mut finish: Finish,
    drain: Option<Drain>,
) -> Response {
    let Forwarded {
        mut resp,
        client_upgrade,
        websocket,
        ..
    } = forwarded;
    finish.status = resp.status();
    if resp.status().is_server_error() {
        // The answer itself is the failure; the body's end adds nothing for the backend.
        served.report(true);
    } else {
        finish.served = Some(served);
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return switch_protocols(resp, client_upgrade, websocket, finish, drain);
    }
    strip_hop_by_hop(resp.headers_mut());
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (mut parts, body) = resp.into_parts();
    set_revision(&mut parts.headers, &finish.revision);
    let closing = drain.map(|d| Box::pin(async move { d.closing().await }) as _);
    let body = AxumBody::new(StatsBody::new(body, deadline, finish, sse, closing));
    Response::from_parts(parts, body)
}

/// Answers the client's 101 with the backend's and splices the two upgraded connections
/// (`tunnel`). The request counts as complete at the handshake.
fn switch_protocols(
    mut resp: Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    websocket: bool,
    finish: Finish,
    drain: Option<Drain>,
) -> Response {
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let revision = finish.revision.clone();
    finish.record(None, false);
    if let Some(client_upgrade) = client_upgrade {
        tunnel::spawn(
            client_upgrade,
            backend_upgrade,
            websocket,
            drain,
            revision.clone(),
        );
    }
    let (mut parts, _) = resp.into_parts();
    set_revision(&mut parts.headers, &revision);
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
