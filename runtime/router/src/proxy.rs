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
use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;

use super::admission;
use super::body::{Finish, Served, StatsBody};
use super::error::RouterError;
use super::guard;
use super::headers::{request_headers, strip_hop_by_hop, upgrade_of};
use super::server::App;
use super::table::Table;
use super::tunnel;
use deepseek_http::Drain;

/// Response header naming the revision that served the request (debugging, tests).
pub const REVISION_HEADER: &str = "x-dsr-revision";

/// The fallback handler: everything that is not the router's own endpoint.
pub async fn proxy(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    if let Err(e) = guard::check(&app.origins, req.method(), req.uri().path(), req.headers()) {
        return e.into_response();
    }
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
