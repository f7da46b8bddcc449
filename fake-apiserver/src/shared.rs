//! State shared by the HTTP handlers and the in-process test hooks: the store, injected
//! failures, the request log and watch settings.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::store::Store;

/// What kind of API call a request was.
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
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Patch | Self::Delete | Self::DeleteCollection
        )
    }
}

/// One request as the server saw it, for assertions such as "no child was written".
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
    pub field_manager: Option<String>,
    pub content_type: Option<String>,
    pub code: u16,
}

impl RequestRecord {
    pub fn is_write(&self) -> bool {
        self.verb.is_write()
    }
}

/// Fails the next `remaining` writes to one kind (optionally one subresource) with 409.
#[derive(Clone, Debug)]
pub struct FailRule {
    pub group: String,
    pub plural: String,
    /// `None`: main resource only; `Some("status")`: the status subresource only.
    pub subresource: Option<String>,
    pub remaining: u32,
}

pub struct Hooks {
    pub failures: Vec<FailRule>,
    pub requests: Vec<RequestRecord>,
    pub bookmark_interval: Duration,
}

pub struct Shared {
    pub store: Mutex<Store>,
    pub hooks: Mutex<Hooks>,
}

impl Shared {
    pub fn new(store: Store) -> Self {
        Self {
            store: Mutex::new(store),
            hooks: Mutex::new(Hooks {
                failures: Vec::new(),
                requests: Vec::new(),
                bookmark_interval: Duration::from_secs(5),
            }),
        }
    }

    /// A poisoned lock only means a test panicked mid-write; the data is still usable.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hooks(&self) -> MutexGuard<'_, Hooks> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Consumes one injected failure for this write, if any is pending.
    pub fn take_failure(&self, group: &str, plural: &str, sub: &Option<String>) -> bool {
        let mut hooks = self.hooks();
        let rule = hooks.failures.iter_mut().find(|r| {
            r.group == group && r.plural == plural && &r.subresource == sub && r.remaining > 0
        });
        match rule {
            Some(r) => {
                r.remaining -= 1;
                true
            }
            None => false,
        }
    }
}

impl Verb {
    /// The verb as Kubernetes authorization (RBAC rules) names it.
    pub fn rbac(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
        }
    }
}

/// One API call as RBAC sees it: verb, API group, resource (with `/subresource` when there is
/// one), e.g. `("patch", "inference.deepseek-k8s.dev", "deepseekdeployments/status")`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
}
