//! Helpers for tests against the real SmolLM2 model: serve arguments and an in-process server.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use deepseek_server as api;

pub use deepseek_test_support::model_path;

pub const REAL_MODEL_NAME: &str = "smollm2";
pub const REAL_CONTEXT: usize = 1024;
pub const REAL_BODY_LIMIT: usize = 256 * 1024;

/// Serve arguments for the real model on an OS-chosen port.
pub fn real_args() -> deepseek_server::serve::ServeArgs {
    deepseek_server::serve::ServeArgs {
        model: model_path(),
        host: "127.0.0.1".into(),
        port: 0,
        served_model_name: Some(REAL_MODEL_NAME.into()),
        revision: "test".into(),
        max_batch_size: 16,
        max_queue: 256,
        context_length: Some(REAL_CONTEXT),
        threads: None,
        chat_template: None,
        max_body_bytes: REAL_BODY_LIMIT,
        max_step_tokens: 512,
        kv_cache_mb: 512,
        shutdown_grace_secs: 30,
        degrade: Default::default(),
        integrity: Default::default(),
        privacy: Default::default(),
        bounds: Default::default(),
        model_files: Default::default(),
        reasoning_parser: Default::default(),
        quantize: None,
        device: Default::default(),
        security: Default::default(),
        connections: Default::default(),
    }
}

/// Starts an in-process server for the real model on its own thread and runtime (so it
/// outlives any one test) and returns its base URL once the engine is warmed up.
pub fn start_real_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let state = deepseek_server::serve::build_state(&real_args()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            while !state.engine.is_ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, api::router(state)).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// Polls /readyz until 200 (model loaded and warmed up), for up to 5 minutes.
pub async fn wait_ready(base: &str) {
    deepseek_test_support::wait_for_http_ready(&format!("{base}/readyz"), Duration::from_secs(300))
        .await;
}
