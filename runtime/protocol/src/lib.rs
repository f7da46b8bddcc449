//! deepseek-protocol: what crosses the wire and what a request means once checked. Is: the
//! OpenAI wire types (this module, serde only) and `validate` (wire request -> `ValidRequest`,
//! one error variant per rule). Is NOT: HTTP, the engine, or any I/O; the server, the engine
//! and the router all build on it, so it sits at the bottom.
//!
//! OpenAI wire types only (serde, no logic): the chat request as clients send it, the replies,
//! stream chunks, the model list, the error body, and the WebSocket frames. Fields a client may
//! omit or get wrong are `Option`s so that `validate` (not serde) owns every rule and its message.

pub mod chat;
pub mod validate;
pub mod ws;

pub use chat::*;

use serde::{Deserialize, Serialize};

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

/// `{"error": {...}}`, the one error body every endpoint answers with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}
