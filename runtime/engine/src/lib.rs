//! deepseek-engine: everything from model files on disk to generated tokens. Is: the model
//! architectures (llama, qwen2, deepseek2) and their KV caches (`model`), the GGUF/safetensors
//! loader, tokenizers and chat templates (`loader`), the batching policy (`scheduler`), the
//! engine thread with sampling and stop handling (`engine`), and the runtime's metric
//! definitions (`metrics`, updated by the engine and the API alike).
//! Is NOT: HTTP, wire types or validation rules (it consumes `deepseek_protocol::validate`'s
//! `ValidRequest`), model-file transport, or the router.
//! Imports point down: engine -> scheduler and model; loader -> model -> `deepseek-kernels`.

pub mod engine;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod scheduler;
