//! deepseek-runtime: loads a model (GGUF or safetensors) and serves the OpenAI chat API with
//! continuous batching. Imports point down only:
//! main -> api -> validate -> loader -> model -> kernels; engine -> model and scheduler;
//! protocol and metrics at the bottom.
pub mod api;
pub mod bench;
pub mod engine;
pub mod kernels;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod router;
pub mod scheduler;
pub mod validate;
