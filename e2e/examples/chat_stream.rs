//! An in-cluster Rust client: streams a chat completion from the chat Service of a
//! DeepSeekDeployment (`http://NAME.NAMESPACE.svc`) and prints tokens as they arrive.
//!
//!   cargo run -q -p deepseek-e2e --example chat_stream -- \
//!       --url http://smollm2.default.svc --model smollm2-135m-instruct "Why is the sky blue?"
//!
//! From a laptop, forward the Service first: `kubectl port-forward svc/smollm2 8080:80` and
//! pass `--url http://127.0.0.1:8080`.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use deepseek_e2e::chat::{self, ChatRequest};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Base URL of the chat Service.
    #[arg(long, env = "CHAT_URL", default_value = "http://smollm2.default.svc")]
    url: String,
    /// Served model name (`spec.model.name`).
    #[arg(long, env = "CHAT_MODEL", default_value = "smollm2-135m-instruct")]
    model: String,
    /// System prompt.
    #[arg(long, default_value = "You are a concise, helpful assistant.")]
    system: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// The user's message.
    prompt: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .build()?;
    let mut req = ChatRequest::user(&args.url, &args.model, &args.prompt);
    req.messages
        .insert(0, json!({"role": "system", "content": args.system}));
    req.max_tokens = args.max_tokens;
    let start = Instant::now();
    let mut first_token = None;
    let mut out = std::io::stdout();
    let (chunks, usage) = chat::stream(&http, &req, |delta| {
        first_token.get_or_insert_with(|| start.elapsed());
        let _ = out.write_all(delta.as_bytes());
        let _ = out.flush();
    })
    .await?;
    println!();
    eprintln!(
        "{chunks} chunks, time to first token {:?}, total {:?}, usage {usage}",
        first_token.unwrap_or_default(),
        start.elapsed()
    );
    Ok(())
}
