//! Controller entry point. Placeholder until the controller work lands (helper
//! "operator-controller" replaces this file); `RunConfig` is the contract with `main.rs`.

use std::net::SocketAddr;

use crate::desired::BuildConfig;

/// Everything `deepseek-operator run` configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Act only while holding the Lease `lease_namespace/lease_name`.
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// Namespace of the leader-election Lease (the operator's own).
    pub lease_namespace: String,
    /// Holder identity written to the Lease (the pod name).
    pub identity: String,
    /// Watch only this namespace; all namespaces when `None`.
    pub watch_namespace: Option<String>,
    /// Inputs of the desired-state builders (default runtime image, port).
    pub build: BuildConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            leader_election: false,
            lease_name: "deepseek-operator".into(),
            lease_namespace: "default".into(),
            identity: "deepseek-operator".into(),
            watch_namespace: None,
            build: BuildConfig::default(),
        }
    }
}

/// Runs the controller until shutdown.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let _ = cfg;
    anyhow::bail!("controller not built yet")
}
