//! The live route table and the route file watcher. The file is re-read every interval (a
//! mounted ConfigMap changes by swapping a symlink, which inotify on the file itself misses);
//! when its bytes change and the new content is valid, a new [`Table`] replaces the old one in
//! one pointer swap. Invalid content is logged and counted, and the old routes stay.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use thiserror::Error;

use super::config::{ConfigError, RouteConfig};
use super::metrics::RouterMetrics;
use super::table::Table;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read the route file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid route file {path}: {source}")]
    Invalid { path: PathBuf, source: ConfigError },
}

/// The current table behind a lock held only for an `Arc` clone or a swap; none until a
/// route file has been read (the router starts before its ConfigMap is mounted, unready).
pub struct Routes {
    current: RwLock<Option<Arc<Table>>>,
}

impl Routes {
    pub fn new(table: Option<Table>) -> Self {
        Self {
            current: RwLock::new(table.map(Arc::new)),
        }
    }

    pub fn current(&self) -> Option<Arc<Table>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn swap(&self, table: Table) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(table));
    }
}

pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<RouteConfig, LoadError> {
    RouteConfig::parse(&String::from_utf8_lossy(bytes)).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and validates the route file once (startup); `None` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<(RouteConfig, Vec<u8>)>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Ok(Some((parse_file(path, &bytes)?, bytes)))
}

/// Publishes the weights of `config` as gauges; revisions that left are set to 0.
pub fn publish_weights(metrics: &RouterMetrics, old: Option<&RouteConfig>, new: &RouteConfig) {
    for r in old.map(|c| c.revisions.as_slice()).unwrap_or_default() {
        metrics.weight.with_label_values(&[r.name.as_str()]).set(0);
    }
    for r in &new.revisions {
        metrics
            .weight
            .with_label_values(&[r.name.as_str()])
            .set(i64::from(r.weight));
    }
}

/// Polls `path` forever; `last` is the content the current table was built from.
pub async fn watch(
    path: PathBuf,
    routes: Arc<Routes>,
    metrics: RouterMetrics,
    interval: Duration,
    mut last: Vec<u8>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the route file; keeping the current routes");
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        match parse_file(&path, &bytes) {
            Ok(config) => {
                let old = routes.current();
                publish_weights(&metrics, old.as_ref().map(|t| &t.config), &config);
                let summary: Vec<String> = config
                    .revisions
                    .iter()
                    .map(|r| format!("{}={}", r.name, r.weight))
                    .collect();
                routes.swap(Table::new(config));
                metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(routes = %summary.join(","), "route file reloaded");
            }
            Err(e) => {
                metrics.reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "route file rejected; keeping the current routes");
            }
        }
        last = bytes;
    }
}
