//! Reloading on file change without a restart: poll the files' contents (Kubernetes updates a
//! mounted Secret by swapping a symlink, which inotify on the file itself misses, and polling
//! a few small files once a second costs nothing), rebuild the value when any changed, keep the
//! old value when the new contents do not parse.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often watched files are re-read.
pub const RELOAD_EVERY: Duration = Duration::from_millis(500);

/// A value built from files, swapped atomically when they change.
pub struct Reloading<T> {
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Builds the value now (failing at startup on bad files) and watches the files from then
    /// on; `what` names the value in log lines.
    pub fn watch<F>(what: &'static str, files: Vec<PathBuf>, build: F) -> anyhow::Result<Arc<Self>>
    where
        F: Fn() -> anyhow::Result<T> + Send + Sync + 'static,
    {
        let mut seen = read_all(&files);
        let value = build()?;
        let this = Arc::new(Self {
            current: RwLock::new(Arc::new(value)),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let Some(this) = weak.upgrade() else { return };
                let now = read_all(&files);
                if now == seen {
                    continue;
                }
                match build() {
                    Ok(v) => {
                        *this.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
                        tracing::info!(what, "reloaded after a file change");
                        seen = now;
                    }
                    // Half-written files parse on a later poll; `seen` stays so it retries.
                    Err(e) => {
                        tracing::warn!(what, error = %e, "changed files do not load; keeping the previous ones")
                    }
                }
            }
        });
        Ok(this)
    }

    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}
