//! The DeepSeekDeployment operator: pure desired-state builders (`desired`), offline rendering
//! (`render`) and the controller (`controller`).

pub mod controller;
pub mod desired;
pub mod render;
