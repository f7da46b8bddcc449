//! DeepSeek's chat templates (fixtures from their tokenizer_config.json) render every
//! conversation of `fixtures/templates/conversations.json` to exactly what Python's jinja2,
//! configured as transformers configures it, renders (`fixtures/templates/expected.json`,
//! written by scripts/chat-template-expectations.py).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use deepseek_engine::loader::{ChatMessage, ChatTemplate, TokenizerConfig};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap()
}

fn template(fixture: &str) -> ChatTemplate {
    let text = std::fs::read_to_string(dir().join(fixture)).unwrap();
    let config: TokenizerConfig = serde_json::from_str(&text).unwrap();
    let token = |t: &Option<deepseek_engine::loader::hf_tokenizer::TokenField>| {
        t.as_ref()
            .map(|t| t.content().to_string())
            .unwrap_or_default()
    };
    ChatTemplate::new(
        config.template().unwrap().unwrap(),
        token(&config.bos_token),
        token(&config.eos_token),
    )
    .unwrap()
}

/// Every (fixture, conversation) pair whose rendering differs from jinja2's, described.
fn mismatches(fixture: &str) -> Vec<String> {
    let t = template(fixture);
    let expected = json("expected.json");
    let cases = json("conversations.json");
    let mut out = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        let want = expected["templates"][fixture][name].as_str().unwrap();
        match t.render(&messages, gen) {
            Ok(got) if got == want => {}
            Ok(got) => out.push(format!("{name}: got {got:?}, want {want:?}")),
            Err(e) => out.push(format!("{name}: {e}")),
        }
    }
    out
}

#[test]
fn deepseek_v2_chat_template_renders_every_conversation_as_jinja2_does() {
    assert_eq!(mismatches("deepseek-v2-chat.json"), Vec::<String>::new());
}

#[test]
fn deepseek_v3_template_renders_every_conversation_as_jinja2_does() {
    assert_eq!(mismatches("deepseek-v3.json"), Vec::<String>::new());
}

#[test]
fn deepseek_r1_template_renders_every_conversation_as_jinja2_does() {
    assert_eq!(mismatches("deepseek-r1.json"), Vec::<String>::new());
}

#[test]
fn deepseek_r1_distill_template_renders_every_conversation_as_jinja2_does() {
    assert_eq!(mismatches("deepseek-r1-distill.json"), Vec::<String>::new());
}

#[test]
fn r1_drops_earlier_reasoning_and_opens_a_think_block_for_the_reply() {
    let out = template("deepseek-r1.json")
        .render(
            &[
                ChatMessage::new("user", "What is 1+1?"),
                ChatMessage::new("assistant", "<think>\nadd\n</think>\n\n2."),
                ChatMessage::new("user", "And 2+2?"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(
        out,
        "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜>\n\n2.<｜end▁of▁sentence｜><｜User｜>And 2+2?<｜Assistant｜><think>\n"
    );
}

#[test]
fn every_fixture_has_expectations_for_every_conversation() {
    let expected = json("expected.json");
    let n = json("conversations.json")["cases"]
        .as_array()
        .unwrap()
        .len();
    let mut fixtures: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with("deepseek-"))
        .collect();
    fixtures.sort();
    assert_eq!(fixtures.len(), 4, "{fixtures:?}");
    for f in fixtures {
        let rendered = expected["templates"][&f].as_object().unwrap();
        assert_eq!(rendered.len(), n, "{f}");
    }
}

#[test]
fn reasoning_is_detected_from_the_r1_templates_only() {
    use deepseek_protocol::validate::ReasoningFormat;
    use deepseek_server::reasoning::ReasoningParserKind;
    let auto = |fixture: &str| {
        let t = template(fixture);
        ReasoningParserKind::Auto.resolve(t.mentions_think(), t.prompt_opens_think())
    };
    let opened = Some(ReasoningFormat::Think {
        opened_by_prompt: true,
    });
    assert_eq!(auto("deepseek-r1.json"), opened);
    assert_eq!(auto("deepseek-r1-distill.json"), opened);
    assert_eq!(auto("deepseek-v3.json"), None);
    assert_eq!(auto("deepseek-v2-chat.json"), None);
}
