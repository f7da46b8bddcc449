//! Garbage collection by owner references: background cascading deletion of dependents,
//! orphaning on request, and collection of objects written with only missing owners.

use serde_json::{json, Value};

use crate::resource::ResourceDef;
use crate::store::{ObjKey, Store};

impl Store {
    /// Background cascading deletion: dependents whose owners are all gone are deleted.
    pub(crate) fn collect_garbage(&mut self, uid: &str) {
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, v)| owner_uids(v).iter().any(|u| u == uid))
            .filter(|(_, v)| owner_uids(v).iter().all(|u| !self.uid_exists(u)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in dependents {
            if let Some(def) = self.find_def(&k.group, &k.plural) {
                let _ = self.delete(&def, &k, false);
            }
        }
    }

    /// The garbage collector also deletes objects written with owner references to owners
    /// that no longer exist (e.g. applied by a controller racing the owner's deletion).
    pub(crate) fn collect_if_orphaned(&mut self, def: &ResourceDef, key: &ObjKey, obj: &Value) {
        let owners = owner_uids(obj);
        if !owners.is_empty() && owners.iter().all(|u| !self.uid_exists(u)) {
            let _ = self.delete(def, key, false);
        }
    }

    pub(crate) fn orphan(&mut self, uid: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, v)| owner_uids(v).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(mut v) = self.objects.get(&k).cloned() else {
                continue;
            };
            if let Some(refs) = v["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            v["metadata"]["resourceVersion"] = json!(self.bump());
            self.objects.insert(k.clone(), v.clone());
            self.emit(&k, "MODIFIED", v);
        }
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|v| v["metadata"]["uid"].as_str() == Some(uid))
    }
}

fn owner_uids(v: &Value) -> Vec<String> {
    v["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
