//! deepseek-test-support: the set-up tests repeat, written once. Is: workspace paths (the
//! real SmolLM2 model `make model` fetches, the Python venv `make test-deps` makes), free
//! ports, polling a URL until it answers or is ready, a generic "eventually" poll, and child
//! processes that die with the test. Is NOT: product code (a dev-dependency only), nor
//! anything that knows the runtime's or the operator's types, so every crate can use it.

pub mod paths;
pub mod process;
pub mod wait;

pub use paths::{model_path, venv_bin, workspace_root, SMOLLM2_GGUF};
pub use process::{free_addr, free_port, ChildGuard};
pub use wait::{eventually, http_client, wait_for_http, wait_for_http_ready};
