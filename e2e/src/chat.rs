//! A minimal OpenAI chat client for the e2e suite and the in-cluster example
//! (e2e/examples/chat_stream.rs): one JSON completion, or a streamed one read as server-sent
//! events, delta by delta.

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

/// One chat request: base URL of the Service (`http://NAME.NAMESPACE.svc`), model, messages.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub base_url: String,
    pub model: String,
    pub messages: Vec<Value>,
    pub max_tokens: u32,
}

impl ChatRequest {
    pub fn user(base_url: &str, model: &str, prompt: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            messages: vec![json!({"role": "user", "content": prompt})],
            max_tokens: 64,
        }
    }

    fn body(&self, stream: bool) -> Value {
        json!({"model": self.model, "messages": self.messages, "max_tokens": self.max_tokens,
            "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null }})
    }

    fn url(&self) -> String {
        format!("{}/v1/chat/completions", self.base_url)
    }
}

/// A non-streamed completion: the assistant's text.
pub async fn complete(client: &reqwest::Client, req: &ChatRequest) -> anyhow::Result<String> {
    let resp = client.post(req.url()).json(&req.body(false)).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.context("response is not JSON")?;
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    Ok(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// A streamed completion: calls `on_delta` with each piece of text as it arrives and returns
/// the number of content chunks and the final usage object.
pub async fn stream(
    client: &reqwest::Client,
    req: &ChatRequest,
    mut on_delta: impl FnMut(&str),
) -> anyhow::Result<(usize, Value)> {
    let resp = client.post(req.url()).json(&req.body(true)).send().await?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!("HTTP {status}: {}", resp.text().await.unwrap_or_default());
    }
    let mut bytes = resp.bytes_stream();
    let (mut buf, mut chunks, mut usage, mut done) = (String::new(), 0, Value::Null, false);
    while let Some(piece) = bytes.next().await {
        buf.push_str(&String::from_utf8_lossy(&piece?));
        // SSE events end with a blank line; keep any partial event for the next read.
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    done = true;
                    continue;
                }
                let v: Value = serde_json::from_str(data).context("bad SSE data")?;
                if let Some(text) = v["choices"][0]["delta"]["content"].as_str() {
                    chunks += 1;
                    on_delta(text);
                }
                if v["usage"].is_object() {
                    usage = v["usage"].clone();
                }
            }
        }
    }
    if !done {
        bail!("stream ended without data: [DONE]");
    }
    Ok((chunks, usage))
}
