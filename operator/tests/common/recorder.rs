//! A client-side record of the operator's API requests (what the fake server used to log on
//! its side) and fault injection, as a tower layer in front of a real `kube::Client`.
//!
//! Every request the operator's client sends is recorded with the HTTP status the real API
//! server answered. Faults are made by the real server too: a status write picked for failure
//! is sent with a stale `metadata.resourceVersion`, which the server answers 409 Conflict.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use tower::{Layer, Service};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn rbac(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    pub fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// One request as the authorizer sees it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub verb: Verb,
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub content_type: Option<String>,
    pub code: u16,
}

/// An RBAC check: `verb group resource[/subresource]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiCall {
    pub verb: String,
    pub group: String,
    pub resource: String,
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "\"\""
        } else {
            &self.group
        };
        write!(f, "{} {group} {}", self.verb, self.resource)
    }
}

impl RequestRecord {
    pub fn is_write(&self) -> bool {
        self.verb.is_write()
    }

    /// The authorization checks this request needs. A server-side apply that creates the
    /// object is authorized as `patch` and also as `create` (the API server checks both).
    pub fn api_calls(&self) -> Vec<ApiCall> {
        let resource = match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.plural),
            None => self.plural.clone(),
        };
        let call = |verb: &str| ApiCall {
            verb: verb.to_string(),
            group: self.group.clone(),
            resource: resource.clone(),
        };
        let mut calls = vec![call(self.verb.rbac())];
        let apply = self.content_type.as_deref() == Some("application/apply-patch+yaml");
        if self.verb == Verb::Patch && apply && self.code == 201 {
            calls.push(call("create"));
        }
        calls
    }

    /// Parses `/api/v1/...` and `/apis/group/version/...` paths; `None` for anything else
    /// (discovery, /version).
    fn parse(method: &str, path: &str, query: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _v, rest @ ..] => (String::new(), rest),
            ["apis", g, _v, rest @ ..] => (g.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [p] => (p.to_string(), None, None),
            [p, n] => (p.to_string(), Some(n.to_string()), None),
            [p, n, s, ..] => (p.to_string(), Some(n.to_string()), Some(s.to_string())),
            _ => return None,
        };
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match (method, name.is_some()) {
            ("GET", _) if watch => Verb::Watch,
            ("GET", true) => Verb::Get,
            ("GET", false) => Verb::List,
            ("POST", _) => Verb::Create,
            ("PUT", _) => Verb::Update,
            ("PATCH", _) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => return None,
        };
        Some(Self {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            verb,
            group,
            plural,
            namespace,
            name,
            subresource,
            content_type: None,
            code: 0,
        })
    }
}

#[derive(Default)]
struct State {
    log: Vec<RequestRecord>,
    /// Status writes (PATCH .../{plural}/{name}/status) still to fail, per plural.
    failing_status_writes: Vec<(String, usize)>,
}

/// Shared handle on the log and the faults; the layer and every clone of it share one.
#[derive(Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

impl Recorder {
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.log.clear();
        }
    }

    /// The next `n` status writes of `plural` reach the server with a stale resourceVersion
    /// (answered 409 Conflict by the server).
    pub fn fail_next_status_writes(&self, plural: &str, n: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.failing_status_writes.push((plural.to_string(), n));
        }
    }

    fn take_fault(&self, rec: &RequestRecord) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if rec.verb != Verb::Patch || rec.subresource.as_deref() != Some("status") {
            return false;
        }
        for (plural, n) in s.failing_status_writes.iter_mut() {
            if *plural == rec.plural && *n > 0 {
                *n -= 1;
                return true;
            }
        }
        false
    }
}

impl<S> Layer<S> for Recorder {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recording {
            inner,
            recorder: self.clone(),
        }
    }
}

pub struct Recording<S> {
    inner: S,
    recorder: Recorder,
}

/// Sets `metadata.resourceVersion` of a JSON body to one long gone. kube sends patch bodies
/// as one buffer, so collecting it completes at once.
fn stale(body: Body) -> Body {
    let bytes = match futures::executor::block_on(body.collect()) {
        Ok(c) => c.to_bytes(),
        Err(_) => return Body::from(Vec::new()),
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut v) => {
            v["metadata"]["resourceVersion"] = serde_json::json!("1");
            Body::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => Body::from(bytes.to_vec()),
    }
}

impl<S, B> Service<Request<Body>> for Recording<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let record = RequestRecord::parse(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        )
        .map(|mut r| {
            r.content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            r
        });
        let fault = record.as_ref().is_some_and(|r| self.recorder.take_fault(r));
        let req = if fault {
            let (parts, body) = req.into_parts();
            Request::from_parts(parts, stale(body))
        } else {
            req
        };
        let call = self.inner.call(req);
        let recorder = self.recorder.clone();
        Box::pin(async move {
            let res = call.await;
            if let (Some(mut r), Ok(resp)) = (record, res.as_ref()) {
                r.code = resp.status().as_u16();
                if let Ok(mut s) = recorder.state.lock() {
                    s.log.push(r);
                }
            }
            res
        })
    }
}
