//! `metadata.managedFields`: reading and writing the per-manager owned field sets, and the
//! ownership a plain (non-apply) write takes: its manager owns every field it changed.

use serde_json::{json, Value};

use crate::fields::{self, FieldPath, FieldSet};

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `has_status` kinds keep `.status` out of it.
    Main { has_status: bool },
    /// The `/status` subresource: only `.status`.
    Status,
}

impl Scope {
    pub fn subresource(self) -> Option<String> {
        matches!(self, Scope::Status).then(|| "status".to_string())
    }
}

/// Server-owned metadata nobody "manages".
const SERVER_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
];

/// The leaf paths of `v` a write in `scope` can own.
pub fn ownable(v: &Value, scope: Scope) -> FieldSet {
    fields::leaf_paths(v)
        .into_iter()
        .filter(|p| in_scope(p, scope))
        .collect()
}

pub fn in_scope(p: &FieldPath, scope: Scope) -> bool {
    let first = p.first().map(String::as_str);
    match scope {
        Scope::Status => first == Some("status"),
        Scope::Main { has_status } => match first {
            Some("apiVersion" | "kind") | None => false,
            Some("status") => !has_status,
            Some("metadata") => p
                .get(1)
                .is_some_and(|k| !SERVER_FIELDS.contains(&k.as_str())),
            Some(_) => true,
        },
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub subresource: Option<String>,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Managed {
    pub fn is(&self, manager: &str, operation: &str, sub: &Option<String>) -> bool {
        self.manager == manager && self.operation == operation && &self.subresource == sub
    }
}

pub fn read(obj: &Value) -> Vec<Managed> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| Managed {
            manager: str_of(e, "manager"),
            operation: str_of(e, "operation"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            api_version: str_of(e, "apiVersion"),
            time: str_of(e, "time"),
            fields: e
                .get("fieldsV1")
                .map(fields::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Writes `entries` back, dropping empty ones and paths the object no longer has.
pub fn write(obj: &mut Value, mut entries: Vec<Managed>) {
    let present = fields::leaf_paths(obj);
    for e in &mut entries {
        e.fields
            .retain(|p| present.contains(p) || present.iter().any(|q| q.starts_with(p)));
    }
    entries.retain(|e| !e.fields.is_empty());
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Sets `manager`'s entry to `fields`, keeping its old timestamp when nothing changed so
/// that a no-op write stays a no-op.
pub fn set_entry(entries: &mut Vec<Managed>, template: Managed) {
    let sub = template.subresource.clone();
    match entries
        .iter_mut()
        .find(|e| e.is(&template.manager, &template.operation, &sub))
    {
        Some(e) if e.fields == template.fields => {}
        Some(e) => *e = template,
        None => entries.push(template),
    }
}

/// Ownership after an Update (POST/PUT/PATCH): the manager takes every field it changed.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: Scope, now: &str) {
    let changed: FieldSet = ownable(new, scope)
        .into_iter()
        .filter(|p| old.and_then(|o| fields::get(o, p)) != fields::get(new, p))
        .collect();
    let mut entries = old.map(read).unwrap_or_default();
    let sub = scope.subresource();
    for e in &mut entries {
        if !e.is(manager, "Update", &sub) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let mut mine = entries
        .iter()
        .find(|e| e.is(manager, "Update", &sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    mine.extend(changed);
    let api_version = str_of(new, "apiVersion");
    set_entry(
        &mut entries,
        Managed {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: sub,
            api_version,
            time: now.to_string(),
            fields: mine,
        },
    );
    write(new, entries);
}
