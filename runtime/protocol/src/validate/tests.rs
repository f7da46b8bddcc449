//! Unit tests: one per rule, asserting the exact variant.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use super::*;
use crate::{ChatMessage, ContentPart, MessageContent, StopSpec, StreamOptions};

/// One token per character, wrapped in a 2-token header: enough to exercise the context rules.
struct CharPrompt;

impl PromptBuilder for CharPrompt {
    fn prompt_tokens(&self, messages: &[PromptMessage]) -> Result<Vec<u32>, String> {
        let mut ids = vec![1, 2];
        for m in messages {
            ids.extend(m.content.chars().map(|c| c as u32));
        }
        Ok(ids)
    }
}

fn limits() -> Limits {
    Limits {
        served_model_name: "m".into(),
        context_length: 32,
        max_stop_strings: 4,
    }
}

fn user(text: &str) -> ChatMessage {
    ChatMessage {
        role: Some("user".into()),
        content: Some(MessageContent::Text(text.into())),
        name: None,
    }
}

fn request() -> ChatCompletionRequest {
    ChatCompletionRequest {
        messages: Some(vec![user("hello")]),
        ..Default::default()
    }
}

fn check(req: ChatCompletionRequest) -> Result<ValidRequest, ValidationError> {
    validate(&req, &limits(), &CharPrompt)
}

#[test]
fn resolves_defaults_for_a_minimal_request() {
    let v = check(request()).unwrap();
    assert_eq!(v.prompt_tokens.len(), 7);
    assert_eq!(v.max_tokens, 32 - 7);
    assert_eq!(v.sampling, SamplingParams::default());
    assert!(!v.stream && !v.include_usage);
    assert!(v.stop.is_empty());
}

#[test]
fn reads_stream_options_and_sampling_fields() {
    let v = check(ChatCompletionRequest {
        stream: Some(true),
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
        }),
        temperature: Some(0.0),
        top_p: Some(0.5),
        top_k: Some(5),
        seed: Some(-1),
        stop: Some(StopSpec::One("x".into())),
        max_tokens: Some(3),
        ..request()
    })
    .unwrap();
    assert!(v.stream && v.include_usage);
    assert_eq!(v.sampling.temperature, 0.0);
    assert_eq!(v.sampling.top_k, 5);
    assert_eq!(v.sampling.seed, Some(u64::MAX));
    assert_eq!(v.stop, vec!["x".to_string()]);
    assert_eq!(v.max_tokens, 3);
}

#[test]
fn rejects_a_model_other_than_the_served_one() {
    let err = check(ChatCompletionRequest {
        model: Some("gpt-4".into()),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::UnknownModel("gpt-4".into()));
    assert_eq!(err.param(), Some("model"));
}

#[test]
fn rejects_missing_and_empty_messages() {
    let missing = check(ChatCompletionRequest::default()).unwrap_err();
    assert_eq!(missing, ValidationError::MissingMessages);
    let empty = check(ChatCompletionRequest {
        messages: Some(vec![]),
        ..request()
    })
    .unwrap_err();
    assert_eq!(empty, ValidationError::EmptyMessages);
}

#[test]
fn rejects_an_unknown_role() {
    let mut m = user("x");
    m.role = Some("wizard".into());
    let err = check(ChatCompletionRequest {
        messages: Some(vec![user("a"), m]),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::UnknownRole {
            index: 1,
            role: "wizard".into()
        }
    );
}

#[test]
fn rejects_a_user_message_without_content_but_accepts_an_empty_assistant_turn() {
    let mut m = user("x");
    m.content = None;
    let err = check(ChatCompletionRequest {
        messages: Some(vec![m.clone()]),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::MissingContent { index: 0 });
    m.role = Some("assistant".into());
    assert!(check(ChatCompletionRequest {
        messages: Some(vec![user("a"), m]),
        ..request()
    })
    .is_ok());
}

#[test]
fn joins_text_parts_and_rejects_image_parts() {
    let part = |kind: &str, text: &str| ContentPart {
        kind: kind.into(),
        text: Some(text.into()),
    };
    let mut m = user("");
    m.content = Some(MessageContent::Parts(vec![
        part("text", "ab"),
        part("text", "c"),
    ]));
    let v = check(ChatCompletionRequest {
        messages: Some(vec![m.clone()]),
        ..request()
    })
    .unwrap();
    assert_eq!(v.messages[0].content, "abc");
    m.content = Some(MessageContent::Parts(vec![part("image_url", "")]));
    let err = check(ChatCompletionRequest {
        messages: Some(vec![m]),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::UnsupportedContentPart {
            index: 0,
            kind: "image_url".into()
        }
    );
}

#[test]
fn rejects_temperature_above_two() {
    let err = check(ChatCompletionRequest {
        temperature: Some(2.5),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::TemperatureOutOfRange(2.5));
    assert_eq!(err.param(), Some("temperature"));
}

#[test]
fn rejects_top_p_of_zero_and_above_one() {
    for p in [0.0, 1.5] {
        let err = check(ChatCompletionRequest {
            top_p: Some(p),
            ..request()
        })
        .unwrap_err();
        assert_eq!(err, ValidationError::TopPOutOfRange(p));
    }
}

#[test]
fn rejects_negative_top_k() {
    let err = check(ChatCompletionRequest {
        top_k: Some(-1),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::TopKOutOfRange(-1));
}

#[test]
fn rejects_zero_max_tokens_naming_the_field_used() {
    let err = check(ChatCompletionRequest {
        max_tokens: Some(0),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::MaxTokensOutOfRange {
            param: "max_tokens",
            value: 0
        }
    );
    let err = check(ChatCompletionRequest {
        max_completion_tokens: Some(-3),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::MaxTokensOutOfRange {
            param: "max_completion_tokens",
            value: -3
        }
    );
}

#[test]
fn prefers_max_completion_tokens_over_max_tokens() {
    let v = check(ChatCompletionRequest {
        max_tokens: Some(10),
        max_completion_tokens: Some(4),
        ..request()
    })
    .unwrap();
    assert_eq!(v.max_tokens, 4);
}

#[test]
fn rejects_penalties_out_of_range() {
    let err = check(ChatCompletionRequest {
        presence_penalty: Some(3.0),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::PenaltyOutOfRange {
            param: "presence_penalty",
            value: 3.0
        }
    );
    let err = check(ChatCompletionRequest {
        frequency_penalty: Some(-2.5),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::PenaltyOutOfRange {
            param: "frequency_penalty",
            value: -2.5
        }
    );
    let err = check(ChatCompletionRequest {
        repetition_penalty: Some(0.0),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::RepetitionPenaltyOutOfRange(0.0));
}

#[test]
fn a_temperature_that_would_overflow_f32_logits_decodes_greedily() {
    for t in [1e-38, 1e-6] {
        let v = check(ChatCompletionRequest {
            temperature: Some(t),
            ..request()
        })
        .unwrap();
        assert_eq!(v.sampling.temperature, 0.0, "temperature {t}");
    }
    let v = check(ChatCompletionRequest {
        temperature: Some(1e-5),
        ..request()
    })
    .unwrap();
    assert!(v.sampling.temperature > 0.0);
}

#[test]
fn a_repetition_penalty_that_is_zero_as_f32_is_rejected() {
    for p in [1e-50, 1e-40] {
        let err = check(ChatCompletionRequest {
            repetition_penalty: Some(p),
            ..request()
        })
        .unwrap_err();
        assert_eq!(err, ValidationError::RepetitionPenaltyOutOfRange(p));
    }
}

#[test]
fn rejects_n_other_than_one() {
    let err = check(ChatCompletionRequest {
        n: Some(2),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::UnsupportedN(2));
    assert!(check(ChatCompletionRequest {
        n: Some(1),
        ..request()
    })
    .is_ok());
}

#[test]
fn rejects_too_many_or_empty_stop_strings() {
    let five = StopSpec::Many((0..5).map(|i| i.to_string()).collect());
    let err = check(ChatCompletionRequest {
        stop: Some(five),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::TooManyStops { count: 5, max: 4 });
    let empty = StopSpec::Many(vec!["a".into(), String::new()]);
    let err = check(ChatCompletionRequest {
        stop: Some(empty),
        ..request()
    })
    .unwrap_err();
    assert_eq!(err, ValidationError::EmptyStop);
}

#[test]
fn rejects_prompt_plus_max_tokens_beyond_the_context() {
    let err = check(ChatCompletionRequest {
        max_tokens: Some(26),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::ContextExceeded {
            prompt: 7,
            max_tokens: 26,
            context: 32
        }
    );
    assert!(check(ChatCompletionRequest {
        max_tokens: Some(25),
        ..request()
    })
    .is_ok());
}

#[test]
fn rejects_a_prompt_that_fills_the_context() {
    let long = "x".repeat(30);
    let err = check(ChatCompletionRequest {
        messages: Some(vec![user(&long)]),
        ..request()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::PromptTooLong {
            prompt: 32,
            context: 32
        }
    );
}

#[test]
fn reports_template_failures_as_their_own_variant() {
    struct Failing;
    impl PromptBuilder for Failing {
        fn prompt_tokens(&self, _: &[PromptMessage]) -> Result<Vec<u32>, String> {
            Err("roles must alternate".into())
        }
    }
    let err = validate(&request(), &limits(), &Failing).unwrap_err();
    assert_eq!(
        err,
        ValidationError::Template("roles must alternate".into())
    );
}
