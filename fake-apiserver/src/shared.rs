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
