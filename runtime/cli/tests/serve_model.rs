//! The chat API over real HTTP on 127.0.0.1 with the real SmolLM2-135M GGUF (`make model`).
//! One shared in-process server for the tests that stay independent of each other; tests that
//! read the engine's gauges or histograms get their own server. max_tokens stays small: CPU
//! decoding on a shared 2-core machine is slow.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/real.rs"]
mod real;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use deepseek_engine::loader::{self, LoadOptions};
use deepseek_protocol::validate::{PromptBuilder, PromptMessage, Role};
use deepseek_server::serve::TemplatePrompt;
use futures::{SinkExt, StreamExt};
use real::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn shared() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(start_real_server)
}

fn req(content: &str, max_tokens: usize) -> Value {
    json!({"model": REAL_MODEL_NAME, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0})
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn answers_a_chat_completion() {
    let v = chat(shared(), &req("What is the capital of France?", 8)).await;
    assert!(!content(&v).trim().is_empty(), "{v}");
    assert_eq!(v["model"], REAL_MODEL_NAME);
    assert!(["stop", "length"].contains(&v["choices"][0]["finish_reason"].as_str().unwrap()));
}

#[tokio::test]
async fn the_streamed_text_equals_the_non_streamed_text_at_temperature_zero() {
    let body = req("Tell me about cats.", 12);
    let plain = content(&chat(shared(), &body).await);
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let (text, finish, _, payloads) = stream_chat(shared(), &streaming).await;
    assert_eq!(text, plain);
    assert_eq!(finish, "length");
    let first: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
}

#[tokio::test]
async fn a_stop_string_ends_the_reply_before_it() {
    let body = req("Write a sentence about the sea.", 16);
    let full = content(&chat(shared(), &body).await);
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(
        words.len() >= 4,
        "need a few words to pick a stop string from: {full:?}"
    );
    let stop = words[2];
    let mut with_stop = body.clone();
    with_stop["stop"] = json!([stop, "\u{1F600}never"]);
    let v = chat(shared(), &with_stop).await;
    assert_eq!(content(&v), full[..full.find(stop).unwrap()]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn max_tokens_ends_with_finish_reason_length() {
    let v = chat(shared(), &req("Count from one to one hundred.", 3)).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

/// "Reply with one word: yes." ends at the model's EOS after a few tokens; with `ignore_eos`
/// generation runs through it to max_tokens (fixed-length benchmark loads rely on this).
#[tokio::test]
async fn ignore_eos_generates_to_max_tokens_past_the_end_of_sequence() {
    let short = req("Reply with one word: yes.", 48);
    let v = chat(shared(), &short).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let stopped_at = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(stopped_at < 48, "{v}");
    let mut long = short.clone();
    long["ignore_eos"] = json!(true);
    let v = chat(shared(), &long).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 48);
}

/// The load generator `make bench` uses, against the real model: fixed-length replies, each
/// prompt its own, usage counted from the stream.
#[tokio::test]
async fn the_bench_load_generator_gets_fixed_length_replies() {
    let report = deepseek_bench::run(deepseek_bench::BenchArgs {
        url: shared().to_string(),
        concurrency: 2,
        requests: 3,
        max_tokens: 20,
        prompt_tokens: 40,
        model: None,
        timeout_secs: 300,
        ignore_eos: true,
        no_prompt_cache: true,
    })
    .await
    .unwrap();
    assert_eq!((report.requests, report.errors), (3, 0), "{report}");
    assert_eq!(report.mean_completion_tokens, 20.0, "{report}");
    assert!(report.prefill_tokens_per_sec > 0.0 && report.decode_tokens_per_sec_per_stream > 0.0);
}

#[tokio::test]
async fn usage_counts_equal_the_tokenizers_counts() {
    let question = "How many legs does a spider have?";
    let v = chat(shared(), &req(question, 6)).await;
    let loaded = loader::load(&LoadOptions {
        model_path: model_path(),
        ..Default::default()
    })
    .unwrap();
    let prompt = TemplatePrompt {
        tokenizer: loaded.tokenizer.clone(),
        template: loaded.chat_template,
        reasoning: None,
    };
    let msgs = [PromptMessage {
        role: Role::User,
        content: question.into(),
    }];
    let prompt_tokens = prompt.prompt_tokens(&msgs).unwrap().len();
    let completion = loaded.tokenizer.encode(&content(&v), false).unwrap().len();
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert_eq!(
        completion, 6,
        "the 6 generated tokens re-encode to 6 tokens"
    );
    assert_eq!(v["usage"]["total_tokens"], prompt_tokens + 6);
}

fn seeded(content: &str, seed: u64) -> Value {
    let mut v = req(content, 10);
    v["temperature"] = json!(0.9);
    v["seed"] = json!(seed);
    v
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text_alone_and_in_a_batch_of_eight() {
    let base = shared();
    let target = seeded("Invent a name for a dragon.", 1234);
    let alone = content(&chat(base, &target).await);
    assert_eq!(content(&chat(base, &target).await), alone, "alone, twice");
    let prompts = [
        "Name a fruit.",
        "Describe rain.",
        "Say hi.",
        "Pick a number.",
        "Name a city.",
        "Tell a joke.",
        "Why is the sky blue?",
    ];
    let mut tasks: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let body = seeded(p, i as u64);
            tokio::spawn(async move { chat(base, &body).await })
        })
        .collect();
    tasks.insert(3, tokio::spawn(async move { chat(base, &target).await }));
    let replies: Vec<Value> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(content(&replies[3]), alone);
}

#[tokio::test]
async fn thirty_two_concurrent_streams_all_complete() {
    let base = shared();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let mut body = req(&format!("Say the number {i}."), 4);
            body["stream"] = json!(true);
            tokio::spawn(async move { stream_chat(base, &body).await })
        })
        .collect();
    for t in tasks {
        let (_, finish, _, _) = t.await.unwrap();
        assert!(["stop", "length"].contains(&finish.as_str()));
    }
}

#[tokio::test]
async fn every_bad_input_gets_an_openai_error_and_the_server_keeps_answering() {
    let cases = bad_inputs(REAL_MODEL_NAME, REAL_BODY_LIMIT, REAL_CONTEXT);
    let failures = check_bad_inputs(shared(), cases).await;
    assert!(failures.is_empty(), "{failures:#?}");
    let v = chat(shared(), &req("Still there?", 2)).await;
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn the_websocket_streams_deltas_and_a_final_frame() {
    let url = format!("{}/ws/chat", shared().replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for id in ["first", "second"] {
        let mut body = req("Say something nice.", 6);
        body["id"] = json!(id);
        ws.send(Message::Text(body.to_string().into()))
            .await
            .unwrap();
    }
    let mut done = Vec::new();
    let mut text = std::collections::HashMap::<String, String>::new();
    while done.len() < 2 {
        let Message::Text(t) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        let id = f["id"].as_str().unwrap().to_string();
        match f["type"].as_str().unwrap() {
            "delta" => text
                .entry(id)
                .or_default()
                .push_str(f["content"].as_str().unwrap()),
            "done" => {
                assert_eq!(f["usage"]["completion_tokens"], 6, "{f}");
                done.push(id);
            }
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert_eq!(
        text["first"], text["second"],
        "same request at temperature 0"
    );
}

#[tokio::test]
async fn the_official_openai_python_client_works() {
    let python = deepseek_test_support::venv_bin("python");
    assert!(
        python.exists(),
        "{} is missing: run `make test-deps`",
        python.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("DSR_BASE_URL", shared())
        .env("DSR_MODEL_NAME", REAL_MODEL_NAME)
        .output()
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("openai client: ok"), "{log}");
}

#[tokio::test]
async fn a_disconnected_client_frees_its_sequence_and_does_not_disturb_the_next_requests() {
    let base = start_real_server();
    let mut body = req("Write a very long essay about history.", 400);
    body["stream"] = json!(true);
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let v = chat(&base, &req("Hello!", 3)).await;
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let mut running = f64::NAN;
    for _ in 0..100 {
        running = metric(&metrics_page(&base).await, "dsr_running_sequences");
        if running == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running, 0.0, "the abandoned sequence is gone");
    let page = metrics_page(&base).await;
    let cancelled = page.lines().any(|l| {
        l.starts_with("dsr_requests_total")
            && l.contains(r#"finish_reason="cancelled""#)
            && l.ends_with(" 1")
    });
    assert!(cancelled, "{page}");
}

#[tokio::test]
async fn eight_concurrent_requests_are_decoded_together() {
    let base = start_real_server();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let body = req(&format!("Write a poem about the number {i}."), 24);
            let base = base.clone();
            tokio::spawn(async move { chat(&base, &body).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
    let page = metrics_page(&base).await;
    let sum = metric(&page, "dsr_decode_batch_size_sum");
    let count = metric(&page, "dsr_decode_batch_size_count");
    assert!(count > 0.0);
    assert!(
        sum / count > 4.0,
        "mean decode batch {} over {count} steps",
        sum / count
    );
}
