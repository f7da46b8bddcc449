//! One streamed chat request, timed: time to first content, total latency, token counts.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

pub struct Job {
    pub http: reqwest::Client,
    pub url: String,
    pub model: String,
    /// Approximate prompt length; each request gets its own text (`super::prompt_of`).
    pub prompt_tokens: usize,
    pub max_tokens: usize,
    pub ignore_eos: bool,
    pub no_prompt_cache: bool,
    /// Number of the run's first request; request `i` is number `first_request + i`.
    pub first_request: u64,
}

/// The outcome of one request.
#[derive(Debug, Clone)]
pub enum Sample {
    Ok {
        ttft: Duration,
        latency: Duration,
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Err(String),
}

pub async fn first_model(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let models: Value = http
        .get(format!("{base}/v1/models"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    models["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{base}/v1/models lists no model; pass --model"))
}

/// Request number `index` of the run.
pub async fn one_request(job: &Job, index: usize) -> Sample {
    match timed(job, index).await {
        Ok(s) => s,
        Err(e) => Sample::Err(e.to_string()),
    }
}

async fn timed(job: &Job, index: usize) -> anyhow::Result<Sample> {
    let mut body = json!({
        "model": job.model,
        "messages": [{"role": "user", "content": super::prompt_of(job.prompt_tokens, job.first_request + index as u64)}],
        "max_tokens": job.max_tokens,
        "temperature": 0.7,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if job.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    if job.no_prompt_cache {
        body["cache_prompt"] = json!(false);
    }
    let start = Instant::now();
    let resp = job.http.post(&job.url).json(&body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("HTTP {status}: {}", resp.text().await.unwrap_or_default());
    }
    let mut stream = resp.bytes_stream();
    let (mut buf, mut ttft, mut chunks) = (String::new(), None, 0u64);
    let mut usage: Option<(u64, u64)> = None;
    while let Some(bytes) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&bytes?));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data)?;
            if let Some(err) = v.get("error") {
                anyhow::bail!("stream error: {err}");
            }
            if v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            {
                chunks += 1;
                ttft.get_or_insert_with(|| start.elapsed());
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                usage = Some((
                    u["prompt_tokens"].as_u64().unwrap_or(0),
                    u["completion_tokens"].as_u64().unwrap_or(0),
                ));
            }
        }
    }
    let latency = start.elapsed();
    let (prompt_tokens, completion_tokens) = usage.unwrap_or((0, chunks));
    Ok(Sample::Ok {
        ttft: ttft.unwrap_or(latency),
        latency,
        prompt_tokens,
        completion_tokens,
    })
}
