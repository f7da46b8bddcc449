//! HTTP entry point: parse the path, classify the verb, run it against the store, log it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::apply::{self, ApplyRequest};
use crate::error::ApiError;
use crate::managed::{self, Scope};
use crate::path::{self, Target};
use crate::resource::ResourceDef;
use crate::selector::Selector;
use crate::shared::{RequestRecord, Shared, Verb};
use crate::store::{self, ObjKey};
use crate::{discovery, watch};

pub type Params = HashMap<String, String>;

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = discovery::handle(uri.path(), &shared) {
        return resp;
    }
    let Some(target) = path::parse(uri.path()) else {
        return ApiError::NotFound(format!(
            "the server could not find the requested resource ({})",
            uri.path()
        ))
        .into_response();
    };
    let verb = classify(&method, &target, &q);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or_default().trim().to_string());
    let manager = field_manager(&q, &headers);
    let req = Request {
        target: &target,
        q: &q,
        body: &body,
        content_type: content_type.as_deref(),
        manager: &manager,
    };
    let resp = match dispatch(&shared, verb, &req) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    shared.hooks().requests.push(RequestRecord {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        verb,
        group: target.group.clone(),
        plural: target.plural.clone(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        subresource: target.subresource.clone(),
        field_manager: q.get("fieldManager").cloned(),
        content_type,
        code: resp.status().as_u16(),
    });
    resp
}

struct Request<'a> {
    target: &'a Target,
    q: &'a Params,
    body: &'a Bytes,
    content_type: Option<&'a str>,
    manager: &'a str,
}

fn classify(method: &Method, t: &Target, q: &Params) -> Verb {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("GET", true) => Verb::Get,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => Verb::Delete,
    }
}

/// Kubernetes derives a default manager from the user agent.
fn field_manager(q: &Params, headers: &HeaderMap) -> String {
    q.get("fieldManager").cloned().unwrap_or_else(|| {
        headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .unwrap_or("unknown")
            .to_string()
    })
}

fn dispatch(shared: &Arc<Shared>, verb: Verb, r: &Request<'_>) -> Result<Response, ApiError> {
    let t = r.target;
    let def = shared
        .store()
        .find_def(&t.group, &t.plural)
        .filter(|d| d.version == t.version)
        .ok_or_else(|| {
            ApiError::NotFound("the server could not find the requested resource".into())
        })?;
    let scope = match t.subresource.as_deref() {
        None => Scope::Main {
            has_status: def.has_status,
        },
        Some("status") if def.has_status => Scope::Status,
        Some(s) => return Err(ApiError::NotFound(format!("subresource {s} not found"))),
    };
    if verb.is_write() && shared.take_failure(&def.group, &def.plural, &t.subresource) {
        let name = t.name.clone().unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "Operation cannot be fulfilled on {} \"{name}\": injected conflict",
            store::qualified(&def)
        )));
    }
    let key = t
        .name
        .as_ref()
        .map(|n| ObjKey::new(&def, t.namespace.as_deref().unwrap_or(""), n));
    match (verb, key) {
        (Verb::Watch, _) => watch::start(shared.clone(), &def, t, r.q),
        (Verb::List, _) => list(shared, &def, t, r.q),
        (Verb::Get, Some(k)) => {
            let obj = shared
                .store()
                .get(&k)
                .cloned()
                .ok_or_else(|| store::not_found(&def, &k.name))?;
            Ok(Json(obj).into_response())
        }
        (Verb::Create, None) => create(shared, &def, r),
        (Verb::Update, Some(k)) => update(shared, &def, &k, scope, r),
        (Verb::Patch, Some(k)) => patch(shared, &def, &k, scope, r),
        (Verb::Delete, Some(k)) => {
            let orphan = body_json(r.body)
                .ok()
                .is_some_and(|b| b["propagationPolicy"] == "Orphan");
            Ok(Json(shared.store().delete(&def, &k, orphan)?).into_response())
        }
        (Verb::DeleteCollection, None) => delete_collection(shared, &def, t, r.q),
        _ => Err(ApiError::MethodNotAllowed(
            "method not allowed on this path".into(),
        )),
    }
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn list(shared: &Shared, def: &ResourceDef, t: &Target, q: &Params) -> Result<Response, ApiError> {
    let sel = Selector::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )?;
    let store = shared.store();
    let items = store.list(def, t.namespace.as_deref(), &sel);
    let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let mut meta = json!({"resourceVersion": store.current_rv().to_string()});
    if end < items.len() {
        meta["continue"] = json!(end.to_string());
    }
    let page: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    Ok(Json(json!({
        "apiVersion": def.api_version(),
        "kind": format!("{}List", def.kind),
        "metadata": meta,
        "items": page,
    }))
    .into_response())
}

fn create(shared: &Shared, def: &ResourceDef, r: &Request<'_>) -> Result<Response, ApiError> {
    let mut obj = body_json(r.body)?;
    let ns = r.target.namespace.clone().unwrap_or_default();
    if def.namespaced && ns.is_empty() {
        return Err(ApiError::BadRequest(
            "a namespaced resource must be created in a namespace".into(),
        ));
    }
    let body_ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    if def.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::BadRequest(
            "the namespace of the object does not match the namespace on the request".into(),
        ));
    }
    managed::record_update(
        None,
        &mut obj,
        r.manager,
        Scope::Main {
            has_status: def.has_status,
        },
        &store::now(),
    );
    let created = shared.store().create(def, &ns, obj)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn update(
    shared: &Shared,
    def: &ResourceDef,
    key: &ObjKey,
    scope: Scope,
    r: &Request<'_>,
) -> Result<Response, ApiError> {
    let mut obj = body_json(r.body)?;
    if obj["metadata"]["name"].as_str() != Some(key.name.as_str()) {
        return Err(ApiError::BadRequest(
            "the name of the object does not match the name on the URL".into(),
        ));
    }
    let mut store = shared.store();
    let old = store
        .get(key)
        .cloned()
        .ok_or_else(|| store::not_found(def, &key.name))?;
    managed::record_update(Some(&old), &mut obj, r.manager, scope, &store::now());
    Ok(Json(store.replace(def, key, obj, scope)?).into_response())
}

fn patch(
    shared: &Shared,
    def: &ResourceDef,
    key: &ObjKey,
    scope: Scope,
    r: &Request<'_>,
) -> Result<Response, ApiError> {
    let mut store = shared.store();
    let old = store.get(key).cloned();
    let now = store::now();
    if r.content_type == Some("application/apply-patch+yaml") {
        let mut config: Value = serde_yaml::from_slice(r.body)
            .map_err(|e| ApiError::BadRequest(format!("invalid apply body: {e}")))?;
        if config["metadata"]["name"].is_null() {
            config["metadata"]["name"] = json!(key.name);
        }
        if !r.q.contains_key("fieldManager") {
            return Err(ApiError::BadRequest(
                "fieldManager is required for apply requests".into(),
            ));
        }
        let name = config["metadata"]["name"].as_str().unwrap_or_default();
        if name != key.name {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        let force = r.q.get("force").is_some_and(|f| f == "true");
        let req = ApplyRequest {
            config: &config,
            manager: r.manager,
            force,
            scope,
            now: &now,
        };
        let new = apply::apply(old.as_ref(), &req)?;
        return match old {
            None if scope == Scope::Status => Err(store::not_found(def, &key.name)),
            None => Ok((
                StatusCode::CREATED,
                Json(store.create(def, &key.namespace, new)?),
            )
                .into_response()),
            Some(_) => Ok(Json(store.replace(def, key, new, scope)?).into_response()),
        };
    }
    let old = old.ok_or_else(|| store::not_found(def, &key.name))?;
    let mut new = old.clone();
    match r.content_type {
        Some("application/merge-patch+json" | "application/strategic-merge-patch+json") => {
            json_patch::merge(&mut new, &body_json(r.body)?);
        }
        Some("application/json-patch+json") => {
            let ops: json_patch::Patch = serde_json::from_slice(r.body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut new, &ops)
                .map_err(|e| ApiError::Invalid(format!("JSON patch failed: {e}")))?;
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "unsupported patch type {other:?}"
            )))
        }
    }
    managed::record_update(Some(&old), &mut new, r.manager, scope, &now);
    Ok(Json(store.replace(def, key, new, scope)?).into_response())
}

fn delete_collection(
    shared: &Shared,
    def: &ResourceDef,
    t: &Target,
    q: &Params,
) -> Result<Response, ApiError> {
    let sel = Selector::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )?;
    let mut store = shared.store();
    let victims = store.list(def, t.namespace.as_deref(), &sel);
    let mut deleted = Vec::new();
    for v in victims {
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Ok(d) = store.delete(def, &ObjKey::new(def, &ns, &name), false) {
            deleted.push(d);
        }
    }
    let rv = store.current_rv().to_string();
    Ok(Json(json!({"apiVersion": def.api_version(), "kind": format!("{}List", def.kind), "metadata": {"resourceVersion": rv}, "items": deleted})).into_response())
}
