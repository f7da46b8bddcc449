//! Discovery documents built from the registered kinds: /version, /api, /api/v1, /apis,
//! /apis/{group} and /apis/{group}/{version}.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::resource::ResourceDef;
use crate::shared::Shared;

pub fn handle(path: &str, shared: &Shared) -> Option<Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let defs = shared.store().defs.clone();
    let body = match segs.as_slice() {
        ["version"] => json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
            "goVersion": "", "compiler": "", "platform": "linux/amd64",
        }),
        ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ["api", v] => resource_list("", v, &defs),
        ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1",
            "groups": groups(&defs).iter().map(|g| group(g, &defs)).collect::<Vec<_>>()}),
        ["apis", g] if groups(&defs).iter().any(|x| x == g) => group(g, &defs),
        // An unknown group/version is a 404, as on a real server (clients discover optional
        // APIs, such as monitoring.coreos.com, this way).
        ["apis", g, v] if defs.iter().any(|d| d.group == *g && d.version == *v) => {
            resource_list(g, v, &defs)
        }
        ["apis", _, _] => {
            return Some(
                crate::error::ApiError::NotFound(format!(
                    "the server could not find the requested resource ({path})"
                ))
                .into_response(),
            )
        }
        _ => return None,
    };
    Some(Json(body).into_response())
}

fn groups(defs: &[ResourceDef]) -> Vec<String> {
    let mut gs: Vec<String> = defs
        .iter()
        .filter(|d| !d.group.is_empty())
        .map(|d| d.group.clone())
        .collect();
    gs.sort();
    gs.dedup();
    gs
}

fn group(g: &str, defs: &[ResourceDef]) -> Value {
    let mut versions: Vec<Value> = defs
        .iter()
        .filter(|d| d.group == g)
        .map(|d| json!({"groupVersion": d.api_version(), "version": d.version}))
        .collect();
    versions.dedup();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
        "versions": versions, "preferredVersion": versions.first()})
}

fn resource_list(g: &str, v: &str, defs: &[ResourceDef]) -> Value {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources = Vec::new();
    for d in defs.iter().filter(|d| d.group == g && d.version == v) {
        resources.push(
            json!({"name": d.plural, "singularName": d.kind.to_lowercase(),
            "namespaced": d.namespaced, "kind": d.kind, "verbs": verbs}),
        );
        if d.has_status {
            resources.push(
                json!({"name": format!("{}/status", d.plural), "singularName": "",
                "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}
