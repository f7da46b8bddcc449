//! Tests of `hf_tokenizer` over a tiny byte-level BPE `tokenizer.json` written by the tests.

use std::path::Path;

use serde_json::json;

use super::*;

const BOS: &str = "<｜begin▁of▁sentence｜>";
const EOS: &str = "<｜end▁of▁sentence｜>";

fn added(id: u32, content: &str, special: bool) -> serde_json::Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": special})
}

/// Ids 0..3 are BOS, EOS, `<think>`, `</think>`; then single byte-level characters for
/// `a`..`z`, `Ġ` (space), `Ã` and `©` (the two bytes of `é`), `Ċ` (newline), and two merges.
fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    // As in DeepSeek's files, the added tokens are also entries of the model's vocabulary.
    for (id, t) in [BOS, EOS, "<think>", "</think>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(id));
    }
    let mut next = 4u32;
    let mut push = |s: &str| {
        vocab.insert(s.to_string(), json!(next));
        next += 1;
    };
    for c in 'a'..='z' {
        push(&c.to_string());
    }
    for s in ["Ġ", "Ã", "©", "Ċ", "Ġh", "Ġhi"] {
        push(s);
    }
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(0, BOS, true), added(1, EOS, true),
                         added(2, "<think>", false), added(3, "</think>", false)],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": [["Ġ", "h"], ["Ġh", "i"]]}
    })
    .to_string()
}

fn write_dir(config: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json()).expect("write");
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).expect("write");
    dir
}

fn deepseek_config() -> serde_json::Value {
    json!({
        "add_bos_token": true,
        "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": false,
                      "normalized": true, "rstrip": false, "single_word": false},
        "eos_token": EOS,
        "model_max_length": 16384,
        "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}",
    })
}

fn load(dir: &Path) -> HfText {
    load_hf_text(dir, None).expect("loads")
}

#[test]
fn special_tokens_come_from_added_token_objects_and_plain_strings() {
    let dir = write_dir(deepseek_config());
    let text = load(dir.path());
    assert_eq!(text.tokenizer.bos_token_id(), Some(0));
    assert_eq!(text.tokenizer.eos_token_ids(), &[1]);
    assert_eq!(text.model_max_length, Some(16384));
    let prompt = text
        .chat_template
        .render(&[ChatMessage::new("user", "hi")], true)
        .expect("renders");
    assert_eq!(prompt, format!("{BOS}hi{EOS}"));
}

#[test]
fn a_rendered_prompt_encodes_markers_to_single_ids_and_gets_no_second_bos() {
    let dir = write_dir(deepseek_config());
    let tok = load(dir.path()).tokenizer;
    let ids = tok
        .encode(&format!("{BOS} hi<think>a"), true)
        .expect("encodes");
    let hi = tok.inner().token_to_id("Ġhi").expect("merged token");
    let a = tok.inner().token_to_id("a").expect("a");
    assert_eq!(ids, vec![0, hi, 2, a]);
    assert_eq!(
        tok.encode("a", true).expect("encodes"),
        vec![a],
        "BOS comes from the template, as with transformers' apply_chat_template"
    );
}

#[test]
fn decoding_drops_special_tokens_but_prints_added_think_tags() {
    let dir = write_dir(deepseek_config());
    let tok = load(dir.path()).tokenizer;
    let ids = tok
        .encode(&format!("{BOS}<think>a</think> hi{EOS}"), false)
        .expect("encodes");
    assert_eq!(tok.decode(&ids), "<think>a</think> hi");
}

#[test]
fn a_character_split_over_two_byte_tokens_is_streamed_whole() {
    let dir = write_dir(deepseek_config());
    let tok = load(dir.path()).tokenizer;
    let ids = tok.encode("é", false).expect("encodes");
    assert_eq!(ids.len(), 2, "é is two byte-level tokens here");
    let mut dec = tok.incremental_decoder();
    assert_eq!(dec.push(ids[0]), None);
    assert_eq!(dec.push(ids[1]).as_deref(), Some("é"));
}

#[test]
fn generation_config_adds_end_of_sequence_ids() {
    let dir = write_dir(deepseek_config());
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"bos_token_id": 0, "eos_token_id": [1, 3]}"#,
    )
    .expect("write");
    assert_eq!(load(dir.path()).tokenizer.eos_token_ids(), &[1, 3]);
}

#[test]
fn the_default_entry_of_a_template_list_is_used() {
    let mut config = deepseek_config();
    config["chat_template"] = json!([
        {"name": "tool_use", "template": "TOOLS"},
        {"name": "default", "template": "DEFAULT"},
    ]);
    let dir = write_dir(config);
    let out = load(dir.path())
        .chat_template
        .render(&[], false)
        .expect("renders");
    assert_eq!(out, "DEFAULT");
}

#[test]
fn a_template_list_without_default_is_bad_metadata() {
    let mut config = deepseek_config();
    config["chat_template"] =
        json!([{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]);
    let dir = write_dir(config);
    let err = load_hf_text(dir.path(), None).expect_err("must fail");
    assert!(matches!(err, LoadError::BadMetadata { .. }), "{err:?}");
}

#[test]
fn a_template_in_chat_template_jinja_is_found() {
    let mut config = deepseek_config();
    config.as_object_mut().map(|o| o.remove("chat_template"));
    let dir = write_dir(config);
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "J{{ messages|length }}",
    )
    .expect("write");
    let out = load(dir.path())
        .chat_template
        .render(&[], false)
        .expect("renders");
    assert_eq!(out, "J0");
}

#[test]
fn the_no_limit_sentinel_of_model_max_length_is_no_limit() {
    let mut config = deepseek_config();
    config["model_max_length"] = json!(1e30);
    let dir = write_dir(config);
    assert_eq!(load(dir.path()).model_max_length, None);
}

#[test]
fn a_bos_token_missing_from_the_vocabulary_is_bad_metadata() {
    let mut config = deepseek_config();
    config["bos_token"] = json!("<s>");
    let dir = write_dir(config);
    let err = load_hf_text(dir.path(), None).expect_err("must fail");
    assert!(matches!(err, LoadError::BadMetadata { .. }), "{err:?}");
}

#[test]
fn a_missing_tokenizer_json_is_an_io_error_naming_the_file() {
    let dir = write_dir(deepseek_config());
    std::fs::remove_file(dir.path().join("tokenizer.json")).expect("rm");
    match load_hf_text(dir.path(), None) {
        Err(LoadError::Io { path, .. }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("unexpected {other:?}"),
    }
}

use super::super::chat_template::ChatMessage;
