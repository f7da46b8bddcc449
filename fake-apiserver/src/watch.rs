//! Watch streams: newline-delimited ADDED/MODIFIED/DELETED events from a resourceVersion
//! (history replay, 410 via an ERROR event when compacted), initial events for rv 0/unset
//! or `sendInitialEvents`, periodic BOOKMARKs and `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::handlers::Params;
use crate::path::Target;
use crate::resource::ResourceDef;
use crate::selector::Selector;
use crate::shared::Shared;
use crate::store::WatchRecord;

struct Filter {
    def: ResourceDef,
    namespace: Option<String>,
    sel: Selector,
}

impl Filter {
    /// The event type this watcher sees for `r`, if any: a change moving an object out of
    /// (into) the selection is a DELETED (ADDED), as the real API server reports it.
    fn event_type(&self, r: &WatchRecord) -> Option<&'static str> {
        let scoped = r.group == self.def.group
            && r.plural == self.def.plural
            && self.namespace.as_ref().is_none_or(|ns| &r.namespace == ns);
        if !scoped {
            return None;
        }
        let now = self.sel.matches(&r.object);
        let before = r.old.as_ref().map_or(now, |o| self.sel.matches(o));
        match (before, now) {
            (true, true) => Some(r.event_type),
            (true, false) => Some("DELETED"),
            (false, true) => Some("ADDED"),
            (false, false) => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta});
        line("BOOKMARK", &obj)
    }
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": event_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

struct Plan {
    initial: Vec<Bytes>,
    gone: bool,
    start_rv: u64,
    rx: broadcast::Receiver<Arc<WatchRecord>>,
}

pub fn start(
    shared: Arc<Shared>,
    def: &ResourceDef,
    t: &Target,
    q: &Params,
) -> Result<Response, ApiError> {
    let filter = Filter {
        def: def.clone(),
        namespace: t.namespace.clone(),
        sel: Selector::parse(
            q.get("labelSelector").map(String::as_str),
            q.get("fieldSelector").map(String::as_str),
        )?,
    };
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let send_initial = flag("sendInitialEvents");
    let bookmarks = flag("allowWatchBookmarks");
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800),
    );
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let plan = plan(&shared, &filter, &rv, send_initial)?;
    let interval = shared.hooks().bookmark_interval;
    let (tx, body_rx) = mpsc::channel::<Result<Bytes, Infallible>>(1024);
    tokio::spawn(pump(
        tx,
        plan,
        filter,
        send_initial,
        bookmarks.then_some(interval),
        timeout,
    ));
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(ReceiverStream::new(body_rx)))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Decides the initial events and subscribes, under one lock so no change is missed.
fn plan(shared: &Shared, f: &Filter, rv: &str, send_initial: bool) -> Result<Plan, ApiError> {
    let store = shared.store();
    let start_rv = store.current_rv();
    let rx = store.subscribe();
    let (initial, gone) = if send_initial || rv.is_empty() || rv == "0" {
        let objs = store.list(&f.def, f.namespace.as_deref(), &f.sel);
        (objs.iter().map(|o| line("ADDED", o)).collect(), false)
    } else {
        let from: u64 = rv
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))?;
        match store.history_since(from) {
            Ok(recs) => (
                recs.iter()
                    .filter_map(|r| f.event_type(r).map(|t| line(t, &r.object)))
                    .collect(),
                false,
            ),
            Err(e) => (vec![line("ERROR", &e.status_body())], true),
        }
    };
    Ok(Plan {
        initial,
        gone,
        start_rv,
        rx,
    })
}

async fn pump(
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    mut plan: Plan,
    f: Filter,
    send_initial: bool,
    bookmark_every: Option<Duration>,
    timeout: Duration,
) {
    for l in plan.initial.drain(..) {
        if tx.send(Ok(l)).await.is_err() {
            return;
        }
    }
    if plan.gone {
        return;
    }
    if send_initial && tx.send(Ok(f.bookmark(plan.start_rv, true))).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(bookmark_every.unwrap_or(Duration::from_secs(3600)));
    ticker.tick().await;
    let mut last = plan.start_rv;
    loop {
        let out = tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            rec = plan.rx.recv() => match rec {
                Ok(r) if r.rv > plan.start_rv => {
                    last = r.rv;
                    let Some(t) = f.event_type(&r) else { continue };
                    line(t, &r.object)
                }
                Ok(_) => continue,
                // A lagging watcher is closed; the client re-watches from its last rv.
                Err(_) => return,
            },
            _ = ticker.tick(), if bookmark_every.is_some() => f.bookmark(last, false),
        };
        if tx.send(Ok(out)).await.is_err() {
            return;
        }
    }
}
