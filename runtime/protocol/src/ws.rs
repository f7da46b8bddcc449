//! `GET /ws/chat` frames (JSON text messages). The client sends a chat request (the HTTP body
//! plus an `id` of its choosing) or a cancel; the server answers per `id` with deltas, then one
//! `done` or `error` frame. See README "WebSocket chat".

use serde::{Deserialize, Serialize};

use super::{ChatCompletionRequest, ErrorDetail, Usage};

/// A client frame: `{"type":"cancel","id":..}` or a chat request (`"type":"chat"` or no type).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ClientFrame {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(flatten)]
    pub request: ChatCompletionRequest,
}

/// A server frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Generated text since the previous delta of this request.
    Delta {
        id: String,
        content: String,
        /// Reasoning text of this delta (R1-style models), apart from `content`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
    },
    /// The request finished; no more frames for this id.
    Done {
        id: String,
        finish_reason: String,
        usage: Usage,
    },
    /// The request was cancelled by the client; no more frames for this id.
    Cancelled { id: String },
    /// The request failed (bad input, queue full, cancelled...); no more frames for this id.
    Error {
        id: Option<String>,
        error: ErrorDetail,
    },
}
