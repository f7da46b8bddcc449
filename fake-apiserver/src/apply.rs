//! Server-side apply: merge the applied configuration into the live object, remove the
//! fields this manager applied before but no longer applies, and refuse (409) to change a
//! field another manager owns unless `force`.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fields::{self, FieldPath, FieldSet};
use crate::managed::{self, Managed, Scope};

pub struct ApplyRequest<'a> {
    pub config: &'a Value,
    pub manager: &'a str,
    pub force: bool,
    pub scope: Scope,
    pub now: &'a str,
}

/// Returns the object after the apply (not yet stored: the store assigns rv/generation).
pub fn apply(live: Option<&Value>, req: &ApplyRequest<'_>) -> Result<Value, ApiError> {
    let mut obj = live.cloned().unwrap_or_else(|| skeleton(req.config));
    let config = scoped_config(req.config, req.scope);
    let applied = managed::ownable(&config, req.scope);
    let mut merged = obj.clone();
    fields::merge_into(&mut merged, &config);

    let sub = req.scope.subresource();
    let mut entries = managed::read(&obj);
    let conflicts = find_conflicts(&entries, req.manager, &applied, &obj, &merged);
    if !conflicts.is_empty() && !req.force {
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, p)| format!("conflict with \"{m}\": .{}", p.join(".")))
            .collect();
        return Err(ApiError::Conflict(format!(
            "Apply failed with {} conflict(s): {}",
            list.len(),
            list.join("; ")
        )));
    }
    // Forcing takes the conflicting fields away; equal values stay shared.
    for (manager, q) in &conflicts {
        for e in entries.iter_mut().filter(|e| &e.manager == manager) {
            e.fields.remove(q);
        }
    }

    let previous = entries
        .iter()
        .find(|e| e.is(req.manager, "Apply", &sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for gone in previous.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(req.manager, "Apply", &sub) && e.fields.contains(gone));
        let still_parent = applied.iter().any(|p| p.starts_with(gone));
        if !owned_elsewhere && !still_parent {
            fields::remove(&mut merged, gone);
        }
    }
    managed::set_entry(
        &mut entries,
        Managed {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            subresource: sub,
            api_version: req.config["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            time: req.now.to_string(),
            fields: applied,
        },
    );
    managed::write(&mut merged, entries);
    obj = merged;
    Ok(obj)
}

/// The part of the applied configuration this scope may write.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut c = config.clone();
    if let Some(m) = c.as_object_mut() {
        match scope {
            Scope::Status => m.retain(|k, _| k == "status"),
            Scope::Main { has_status: true } => {
                m.remove("status");
            }
            Scope::Main { has_status: false } => {}
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
    }
    c
}

fn skeleton(config: &Value) -> Value {
    let mut obj = json!({
        "apiVersion": config["apiVersion"],
        "kind": config["kind"],
        "metadata": {"name": config["metadata"]["name"]},
    });
    if let Some(ns) = config["metadata"]["namespace"].as_str() {
        obj["metadata"]["namespace"] = json!(ns);
    }
    obj
}

/// One path a prefix of (or equal to) the other: they describe overlapping fields.
fn related(a: &FieldPath, b: &FieldPath) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn find_conflicts(
    entries: &[Managed],
    manager: &str,
    applied: &FieldSet,
    live: &Value,
    merged: &Value,
) -> Vec<(String, FieldPath)> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager) {
        for q in &e.fields {
            for p in applied.iter().filter(|p| related(p, q)) {
                let shorter = if p.len() <= q.len() { p } else { q };
                if fields::get(live, shorter) != fields::get(merged, shorter) {
                    out.push((e.manager.clone(), q.clone()));
                    break;
                }
            }
        }
    }
    out
}
