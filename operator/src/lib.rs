//! The DeepSeekDeployment operator: pure desired-state builders (`desired`), offline rendering
//! (`render`) and the controller (`controller`).

pub mod cache;
pub mod context;
pub mod controller;
pub mod desired;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod rollout;
pub mod status;
pub mod status_failure;
pub mod status_ops;
pub mod status_verification;
