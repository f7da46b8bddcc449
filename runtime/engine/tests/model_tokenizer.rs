//! The tokenizer rebuilt from SmolLM2's GGUF metadata against llama.cpp's own tokenization of
//! the same file (fixture written once by scripts/tokenizer-fixture.py), plus streaming
//! decoding of characters that span several tokens.

mod model_support;

use deepseek_engine::loader::{GgufFile, TextTokenizer};
use model_support::smollm2_path;

fn smollm2_tokenizer() -> TextTokenizer {
    let file = GgufFile::open(&smollm2_path()).expect("opens");
    TextTokenizer::from_gguf_vocab(&file.vocab().expect("vocab")).expect("builds")
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn token_ids_equal_llama_cpp_for_every_fixture_string() {
    let raw = include_str!("fixtures/tokenizer_smollm2.json");
    let fixture: Fixture = serde_json::from_str(raw).expect("fixture parses");
    assert!(fixture.cases.len() >= 10);
    let tok = smollm2_tokenizer();
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tok.encode(&case.text, false).expect("encodes");
        if ids != case.ids {
            failures.push(format!(
                "{:?}\n  ours:      {ids:?}\n  llama.cpp: {:?}",
                case.text, case.ids
            ));
        }
        assert_eq!(tok.decode(&ids), case.text, "decode(encode(x)) == x");
        let hf = tok.inner().decode(&ids, true).expect("tokenizers decodes");
        assert_eq!(
            hf, case.text,
            "the rebuilt tokenizers::Tokenizer decodes the same"
        );
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn special_token_markers_encode_to_single_ids_and_decode_to_nothing() {
    let tok = smollm2_tokenizer();
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>", false)
        .expect("encodes");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(tok.decode(&ids), "user\nHi");
    assert_eq!(tok.eos_token_ids(), &[2]);
    assert_eq!(tok.token_text(2), Some("<|im_end|>"));
}

#[test]
fn incremental_decoder_never_emits_a_broken_character() {
    let tok = smollm2_tokenizer();
    let text = "Zürich 😀🚀 我们的目标 ok";
    let ids = tok.encode(text, false).expect("encodes");
    // The emoji and the Chinese characters are made of byte-level tokens that split characters.
    assert!(ids.len() > text.chars().count() / 2);
    let mut dec = tok.incremental_decoder();
    let mut streamed = String::new();
    let mut silent_steps = 0;
    for &id in &ids {
        match dec.push(id) {
            Some(piece) => {
                assert!(!piece.contains('\u{FFFD}'), "broken character in {piece:?}");
                streamed.push_str(&piece);
            }
            None => silent_steps += 1,
        }
    }
    assert_eq!(dec.finish(), None);
    assert_eq!(streamed, text);
    assert!(
        silent_steps > 0,
        "some tokens must end mid-character for this test to mean anything"
    );
}

#[test]
fn incremental_decoder_flushes_an_unfinished_character_at_the_end() {
    let tok = smollm2_tokenizer();
    let ids = tok.encode("😀", false).expect("encodes");
    assert!(ids.len() > 1);
    let mut dec = tok.incremental_decoder();
    for &id in &ids[..ids.len() - 1] {
        assert_eq!(dec.push(id), None);
    }
    assert_eq!(dec.finish().as_deref(), Some("\u{FFFD}"));
}
