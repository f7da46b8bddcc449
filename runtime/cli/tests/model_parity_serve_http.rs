//! `deepseek-runtime serve --model DIR` on a safetensors checkpoint directory, over real HTTP on
//! 127.0.0.1: the tiny deepseek2 parity checkpoint (MLA + MoE) plus a small SentencePiece-style
//! tokenizer.json and a tokenizer_config.json with a chat template, written by the test. The
//! served reply at temperature 0 must be exactly the greedy continuation computed in-process
//! through the same loader, and the streamed text must equal the non-streamed one.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/real.rs"]
mod real;

use std::path::Path;
use std::process::Stdio;

use common::*;
use deepseek_engine::loader::{self, LoadOptions};
use deepseek_engine::model::SeqInput;
use deepseek_protocol::validate::{PromptBuilder, PromptMessage, Role};
use deepseek_server::serve::TemplatePrompt;
use real::wait_ready;
use serde_json::{json, Value};

const BOS: &str = "<｜begin▁of▁sentence｜>";
const EOS: &str = "<｜end▁of▁sentence｜>";
const TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
const MAX_TOKENS: usize = 8;

/// 64 tokens, as many as the checkpoint's vocabulary: specials, the word marker, letters,
/// digits and punctuation; no merges (every character is a token).
fn tokenizer_json() -> Value {
    let mut vocab = serde_json::Map::new();
    let mut pieces: Vec<String> = vec!["<unk>".into(), BOS.into(), EOS.into(), "▁".into()];
    pieces.extend(('a'..='z').map(String::from));
    pieces.extend(('0'..='9').map(String::from));
    pieces.extend([":", "?", ".", ",", "!", "'"].map(String::from));
    pieces.extend(('A'..='Z').map(String::from).take(64 - pieces.len()));
    for (i, p) in pieces.iter().enumerate() {
        vocab.insert(p.clone(), json!(i));
    }
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let metaspace = json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                           "split": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, BOS), special(2, EOS)],
        "normalizer": null, "pre_tokenizer": metaspace, "post_processor": null,
        "decoder": metaspace,
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    })
}

/// The deepseek2 parity checkpoint plus the text files `serve` needs.
fn checkpoint_dir(dir: &Path) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/parity/deepseek2");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json().to_string()).unwrap();
    let config = json!({"bos_token": BOS, "eos_token": EOS, "add_bos_token": false,
                        "chat_template": TEMPLATE, "model_max_length": 128});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

/// What the server must answer: greedy decoding through the same loader, in-process.
fn expected_reply(dir: &Path, question: &str) -> String {
    let loaded = loader::load(&LoadOptions {
        model_path: dir.to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.info.architecture, "deepseek2");
    let prompt = TemplatePrompt {
        tokenizer: loaded.tokenizer.clone(),
        template: loaded.chat_template,
        reasoning: None,
    };
    let msgs = [PromptMessage {
        role: Role::User,
        content: question.into(),
    }];
    let mut next = prompt.prompt_tokens(&msgs).unwrap();
    let mut cache = loaded.model.new_cache();
    let mut out = Vec::new();
    for _ in 0..MAX_TOKENS {
        let logits = loaded
            .model
            .forward(&mut [SeqInput {
                tokens: &next,
                cache: &mut cache,
            }])
            .unwrap();
        let row = &logits[0];
        let tok = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
        if loaded.info.eos_token_ids.contains(&tok) {
            break;
        }
        out.push(tok);
        next = vec![tok];
    }
    loaded.tokenizer.decode(&out)
}

use deepseek_test_support::free_port;

#[tokio::test]
async fn serves_a_deepseek2_safetensors_directory_with_the_in_process_greedy_reply() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint_dir(dir.path());
    let question = "what is two plus two?";
    let want = expected_reply(dir.path(), question);
    // The fixture's greedy reply is 8 characters long ("HNhPC265"), not an early EOS.
    assert_eq!(want.chars().count(), MAX_TOKENS, "{want:?}");

    let port = free_port();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["serve", "--model"])
        .arg(dir.path())
        .args([
            "--port",
            &port.to_string(),
            "--served-model-name",
            "tiny-deepseek2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;

    let body = json!({"model": "tiny-deepseek2", "temperature": 0, "max_tokens": MAX_TOKENS,
                      "messages": [{"role": "user", "content": question}]});
    let v = chat(&base, &body).await;
    assert_eq!(v["choices"][0]["message"]["content"], want.as_str(), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= MAX_TOKENS as u64);

    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let (text, _finish, _, _) = stream_chat(&base, &streaming).await;
    assert_eq!(text, want);
}
