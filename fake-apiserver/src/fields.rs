//! Field paths inside JSON objects: leaf enumeration, get/remove, deep merge, and the
//! managedFields `fieldsV1` encoding. Lists are atomic (one leaf), a simplification of
//! server-side apply's associative lists that is exact for a single applier.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Leaf paths of `v`: maps recurse (an empty map is itself a leaf), anything else is a leaf.
pub fn leaf_paths(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(v, &mut Vec::new(), &mut out);
    out
}

fn collect(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

pub fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// Removes the field at `path`, then the parent maps it leaves empty.
pub fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(m)) = get_mut(v, parents) {
        m.remove(last);
        if m.is_empty() && !parents.is_empty() {
            remove(v, parents);
        }
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(v, |cur, k| cur.as_object_mut()?.get_mut(k))
}

/// Deep merge: maps merge key by key, any other value (scalars, lists, null) replaces.
pub fn merge_into(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && sv.is_object() => merge_into(dv, sv),
                    _ => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

/// `{"f:spec": {"f:replicas": {}}}`; a path that also has owned children gets a "." marker.
pub fn to_fields_v1(paths: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let Value::Object(m) = cur else { break };
            cur = m
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if let Value::Object(m) = cur {
            if !m.is_empty() {
                m.insert(".".to_string(), Value::Object(Map::new()));
            }
        }
    }
    mark_dots(&mut root, paths, &mut Vec::new());
    root
}

/// A path inserted before its children has no "." yet; add it where the node is owned.
fn mark_dots(v: &mut Value, paths: &FieldSet, prefix: &mut FieldPath) {
    let Value::Object(m) = v else { return };
    if !prefix.is_empty() && paths.contains(prefix) && m.keys().any(|k| k != ".") {
        m.insert(".".to_string(), Value::Object(Map::new()));
    }
    for (k, child) in m.iter_mut() {
        if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_string());
            mark_dots(child, paths, prefix);
            prefix.pop();
        }
    }
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    decode(v, &mut Vec::new(), &mut out);
    out
}

fn decode(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<_> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if !prefix.is_empty() && (children.is_empty() || m.contains_key(".")) {
        out.insert(prefix.clone());
    }
    for (k, child) in children {
        prefix.push(k[2..].to_string());
        decode(child, prefix, out);
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn lists_are_single_leaves_and_empty_maps_count() {
        let v = json!({"a": {"b": 1, "c": [1, 2]}, "d": {}});
        let got: Vec<_> = leaf_paths(&v).into_iter().collect();
        assert_eq!(got, vec![p("a.b"), p("a.c"), p("d")]);
    }

    #[test]
    fn fields_v1_round_trips_including_owned_parents() {
        let set: FieldSet = [p("spec.replicas"), p("spec.template"), p("spec.template.x")]
            .into_iter()
            .collect();
        let enc = to_fields_v1(&set);
        assert_eq!(enc["f:spec"]["f:template"]["."], json!({}));
        assert_eq!(from_fields_v1(&enc), set);
    }

    #[test]
    fn remove_prunes_empty_parents() {
        let mut v = json!({"spec": {"a": {"b": 1}, "c": 2}});
        remove(&mut v, &p("spec.a.b"));
        assert_eq!(v, json!({"spec": {"c": 2}}));
    }

    #[test]
    fn merge_replaces_lists_and_merges_maps() {
        let mut v = json!({"a": {"x": 1, "l": [1, 2]}, "b": 1});
        merge_into(&mut v, &json!({"a": {"y": 2, "l": [3]}}));
        assert_eq!(v, json!({"a": {"x": 1, "y": 2, "l": [3]}, "b": 1}));
    }
}
