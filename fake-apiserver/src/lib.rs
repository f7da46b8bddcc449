//! In-process fake Kubernetes API server with real semantics, for controller tests.
//!
//! A real HTTP server on 127.0.0.1 (random port) that a real `kube::Client` talks to:
//! get/list/watch, create, replace with resourceVersion optimistic concurrency, merge /
//! strategic / JSON patches, server-side apply with managedFields and conflicts, status
//! subresources, generation, finalizers, owner-reference garbage collection and discovery,
//! for the built-in kinds in [`builtin_defs`] and any kind a test registers. Test hooks
//! read and write objects in-process (play the deployment controller or kubelet), inject
//! 409s, compact the watch history and expose a request log.

mod apply;
mod discovery;
mod error;
mod fields;
mod gc;
mod handlers;
mod managed;
mod path;
mod resource;
mod selector;
mod shared;
mod store;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::ApiError;
pub use resource::{builtin_defs, monitoring_defs, ResourceDef};
pub use shared::{ApiCall, RequestRecord, Verb};

use managed::Scope;
use shared::{FailRule, Shared};
use store::{ObjKey, Store};

/// Manager name recorded in managedFields for writes made through the test hooks.
pub const HOOK_MANAGER: &str = "fake-apiserver-hook";

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server with the built-in kinds registered.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::new(Store::new(builtin_defs())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(handlers::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake apiserver stopped");
            }
        });
        Ok(Self { shared, addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A real kube client pointed at this server (namespace "default").
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let config = kube::Config::new(self.url().parse()?);
        Ok(kube::Client::try_from(config)?)
    }

    pub fn register(&self, def: ResourceDef) {
        self.shared.store().register(def);
    }

    /// Registers a typed kind (e.g. a `#[derive(CustomResource)]` type).
    pub fn register_kind<K>(&self, has_status: bool)
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        self.register(ResourceDef::of::<K>(has_status));
    }

    fn def_of<K: Resource<DynamicType = ()>>(&self) -> Result<ResourceDef, ApiError> {
        let (group, plural) = (K::group(&()), K::plural(&()));
        self.shared
            .store()
            .find_def(&group, &plural)
            .ok_or_else(|| ApiError::NotFound(format!("kind {} is not registered", K::kind(&()))))
    }

    pub fn get_raw(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store();
        let def = store.find_def(group, plural)?;
        store.get(&ObjKey::new(&def, namespace, name)).cloned()
    }

    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let v = self.get_raw(&K::group(&()), &K::plural(&()), namespace, name)?;
        serde_json::from_value(v).ok()
    }

    /// All objects of a kind (in one namespace, or all with `None`), as stored.
    pub fn list_raw<K: Resource<DynamicType = ()>>(&self, namespace: Option<&str>) -> Vec<Value> {
        let Ok(def) = self.def_of::<K>() else {
            return Vec::new();
        };
        self.shared
            .store()
            .list(&def, namespace, &selector::Selector::default())
    }

    pub fn list<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
    ) -> Vec<K> {
        self.list_raw::<K>(namespace)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    /// Creates an object in-process (kind from its apiVersion/kind); a `.status` in it is
    /// then written through the status subresource, as a controller would.
    pub fn create_raw(&self, obj: Value) -> Result<Value, ApiError> {
        let def = self.def_for_object(&obj)?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status = obj.get("status").cloned();
        let mut body = obj;
        managed::record_update(
            None,
            &mut body,
            HOOK_MANAGER,
            Scope::Main {
                has_status: def.has_status,
            },
            &store::now(),
        );
        let created = self.shared.store().create(&def, &ns, body)?;
        match status {
            Some(s) if def.has_status => {
                let name = created["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.write(&def, &ns, &name, Scope::Status, |o| o["status"] = s)
            }
            _ => Ok(created),
        }
    }

    fn def_for_object(&self, obj: &Value) -> Result<ResourceDef, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        self.shared
            .store()
            .defs
            .iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::NotFound(format!("kind {api_version}/{kind} is not registered"))
            })
    }

    /// Replaces `.status` (status subresource semantics), like the deployment controller
    /// or the kubelet reporting on an object.
    pub fn set_status<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let def = self.def_of::<K>()?;
        let scope = if def.has_status {
            Scope::Status
        } else {
            Scope::Main { has_status: false }
        };
        self.write(&def, namespace, name, scope, |o| o["status"] = status)
    }

    /// Edits the main resource in-process (status untouched for status-subresource kinds).
    pub fn update<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let def = self.def_of::<K>()?;
        self.write(
            &def,
            namespace,
            name,
            Scope::Main {
                has_status: def.has_status,
            },
            edit,
        )
    }

    fn write(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        scope: Scope,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(def, ns, name);
        let mut store = self.shared.store();
        let old = store
            .get(&key)
            .cloned()
            .ok_or_else(|| store::not_found(def, name))?;
        let mut new = old.clone();
        edit(&mut new);
        managed::record_update(Some(&old), &mut new, HOOK_MANAGER, scope, &store::now());
        store.replace(def, &key, new, scope)
    }

    /// Deletes in-process, with garbage collection of dependents.
    pub fn delete<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let def = self.def_of::<K>()?;
        self.shared
            .store()
            .delete(&def, &ObjKey::new(&def, namespace, name), false)
    }

    /// The next `n` writes to kind `K` (main resource, or the given subresource) get 409.
    pub fn fail_next_writes<K: Resource<DynamicType = ()>>(
        &self,
        subresource: Option<&str>,
        n: u32,
    ) {
        self.shared.hooks().failures.push(FailRule {
            group: K::group(&()).to_string(),
            plural: K::plural(&()).to_string(),
            subresource: subresource.map(str::to_string),
            remaining: n,
        });
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.hooks().requests.clone()
    }

    /// The distinct API calls served so far, as RBAC names them (verb, group, resource with
    /// subresource), with the requests that made each: what a least-privilege role must allow.
    pub fn api_calls(&self) -> std::collections::BTreeMap<ApiCall, Vec<RequestRecord>> {
        let mut calls: std::collections::BTreeMap<ApiCall, Vec<RequestRecord>> =
            std::collections::BTreeMap::new();
        for r in self.requests() {
            for call in r.api_calls() {
                calls.entry(call).or_default().push(r.clone());
            }
        }
        calls
    }

    pub fn clear_requests(&self) {
        self.shared.hooks().requests.clear();
    }

    /// Drops the watch history: watches from an older resourceVersion get 410 Gone.
    pub fn compact_history(&self) {
        self.shared.store().compact();
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        self.shared.hooks().bookmark_interval = every;
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.store().current_rv()
    }
}
