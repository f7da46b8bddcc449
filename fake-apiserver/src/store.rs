//! The object store: objects by (group, plural, namespace, name), the global resourceVersion
//! counter, generation, status-subresource isolation, finalizers, owner-reference garbage
//! collection and the watch event history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::managed::Scope;
use crate::resource::ResourceDef;
use crate::selector::Selector;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(def: &ResourceDef, namespace: &str, name: &str) -> Self {
        Self {
            group: def.group.clone(),
            plural: def.plural.clone(),
            namespace: if def.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// One change, as the watch stream and history carry it.
#[derive(Clone, Debug)]
pub struct WatchRecord {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub event_type: &'static str,
    pub object: Value,
    /// The object before a MODIFIED change, so selector watches can turn a change that
    /// leaves (enters) the selection into DELETED (ADDED).
    pub old: Option<Value>,
}

pub struct Store {
    pub defs: Vec<ResourceDef>,
    pub(crate) objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    history: VecDeque<Arc<WatchRecord>>,
    compacted_rv: u64,
    pub history_limit: usize,
    tx: broadcast::Sender<Arc<WatchRecord>>,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str(v: &Value, k: &str) -> String {
    v["metadata"][k].as_str().unwrap_or_default().to_string()
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    c
}

impl Store {
    pub fn new(defs: Vec<ResourceDef>) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Self {
            defs,
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            compacted_rv: 0,
            history_limit: 10_000,
            tx,
        }
    }

    pub fn find_def(&self, group: &str, plural: &str) -> Option<ResourceDef> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.plural == plural)
            .cloned()
    }

    pub fn register(&mut self, def: ResourceDef) {
        self.defs
            .retain(|d| !(d.group == def.group && d.plural == def.plural));
        self.defs.push(def);
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchRecord>> {
        self.tx.subscribe()
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one kind, optionally in one namespace, matching `sel`, ordered by key.
    pub fn list(&self, def: &ResourceDef, namespace: Option<&str>, sel: &Selector) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == def.group && k.plural == def.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, v)| sel.matches(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Events after `rv`, or Gone when the history no longer reaches back that far.
    pub fn history_since(&self, rv: u64) -> Result<Vec<Arc<WatchRecord>>, ApiError> {
        if rv < self.compacted_rv {
            return Err(ApiError::Gone(format!(
                "too old resource version: {rv} ({})",
                self.compacted_rv
            )));
        }
        Ok(self.history.iter().filter(|r| r.rv > rv).cloned().collect())
    }

    /// Drops the whole event history (as etcd compaction does): older watches get 410.
    pub fn compact(&mut self) {
        self.compacted_rv = self.rv;
        self.history.clear();
    }

    pub(crate) fn bump(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    pub(crate) fn emit(&mut self, key: &ObjKey, event_type: &'static str, object: Value) {
        self.emit_change(key, event_type, object, None);
    }

    fn emit_change(
        &mut self,
        key: &ObjKey,
        event_type: &'static str,
        object: Value,
        old: Option<Value>,
    ) {
        let rec = Arc::new(WatchRecord {
            rv: self.rv,
            group: key.group.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            event_type,
            object,
            old,
        });
        self.history.push_back(rec.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        let _ = self.tx.send(rec);
    }

    pub fn create(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let mut name = meta_str(&obj, "name");
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::Invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            }
            name = format!(
                "{prefix}{}",
                &uuid::Uuid::new_v4().simple().to_string()[..5]
            );
        }
        let key = ObjKey::new(def, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists(format!(
                "{} \"{name}\" already exists",
                qualified(def)
            )));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        let rv = self.bump();
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        if def.namespaced {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        meta["resourceVersion"] = json!(rv);
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        if def.has_status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        self.objects.insert(key.clone(), obj.clone());
        self.emit(&key, "ADDED", obj.clone());
        self.collect_if_orphaned(def, &key, &obj);
        Ok(obj)
    }

    /// Replaces an existing object within `scope`, enforcing a resourceVersion precondition
    /// when `new` carries one. Unchanged objects are not rewritten (no rv bump, no event).
    pub fn replace(
        &mut self,
        def: &ResourceDef,
        key: &ObjKey,
        mut new: Value,
        scope: Scope,
    ) -> Result<Value, ApiError> {
        let old = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(def, &key.name))?;
        let want_rv = meta_str(&new, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(def), key.name
            )));
        }
        new = match scope {
            Scope::Status => {
                let mut o = old.clone();
                set_or_remove(&mut o, "status", new.get("status").cloned());
                o["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
                o
            }
            Scope::Main { has_status: true } => {
                set_or_remove(&mut new, "status", old.get("status").cloned());
                new
            }
            Scope::Main { has_status: false } => new,
        };
        if new["metadata"]["managedFields"].is_null() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
        for k in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "name",
            "namespace",
            "resourceVersion",
        ] {
            set_or_remove(&mut new["metadata"], k, old["metadata"].get(k).cloned());
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        if spec_part(&new) != spec_part(&old) {
            let gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(gen + 1);
        }
        if new == old {
            return Ok(old);
        }
        new["metadata"]["resourceVersion"] = json!(self.bump());
        if new["metadata"].get("deletionTimestamp").is_some() && finalizers_empty(&new) {
            return Ok(self.remove(key, new));
        }
        self.objects.insert(key.clone(), new.clone());
        self.emit_change(key, "MODIFIED", new.clone(), Some(old));
        self.collect_if_orphaned(def, key, &new);
        Ok(new)
    }

    /// Deletes (or, with finalizers, marks for deletion) and garbage-collects dependents.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        key: &ObjKey,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let mut obj = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(def, &key.name))?;
        if !finalizers_empty(&obj) {
            if obj["metadata"].get("deletionTimestamp").is_none() {
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                obj["metadata"]["resourceVersion"] = json!(self.bump());
                self.objects.insert(key.clone(), obj.clone());
                self.emit(key, "MODIFIED", obj.clone());
            }
            return Ok(obj);
        }
        self.bump();
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let uid = meta_str(&obj, "uid");
        if orphan {
            self.orphan(&uid);
        }
        Ok(self.remove(key, obj))
    }

    pub(crate) fn remove(&mut self, key: &ObjKey, obj: Value) -> Value {
        self.objects.remove(key);
        self.emit(key, "DELETED", obj.clone());
        let uid = meta_str(&obj, "uid");
        self.collect_garbage(&uid);
        obj
    }
}

pub fn qualified(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        def.plural.clone()
    } else {
        format!("{}.{}", def.plural, def.group)
    }
}

pub fn not_found(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::NotFound(format!("{} \"{name}\" not found", qualified(def)))
}

fn finalizers_empty(v: &Value) -> bool {
    v["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty)
}

fn set_or_remove(obj: &mut Value, k: &str, v: Option<Value>) {
    match (obj.as_object_mut(), v) {
        (Some(m), Some(v)) => {
            m.insert(k.to_string(), v);
        }
        (Some(m), None) => {
            m.remove(k);
        }
        _ => {}
    }
}
