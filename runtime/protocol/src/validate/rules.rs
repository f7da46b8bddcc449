//! The individual rules `validate` applies, one small function per request field group.

use super::{Limits, PromptMessage, SamplingParams, ValidationError};
use crate::{ChatCompletionRequest, MessageContent, StopSpec};

/// A chat role the templates understand. `developer` is OpenAI's newer name for `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

pub(super) fn check_model(
    req: &ChatCompletionRequest,
    limits: &Limits,
) -> Result<(), ValidationError> {
    match &req.model {
        Some(m) if *m != limits.served_model_name => Err(ValidationError::UnknownModel(m.clone())),
        _ => Ok(()),
    }
}

pub(super) fn messages(req: &ChatCompletionRequest) -> Result<Vec<PromptMessage>, ValidationError> {
    let raw = req
        .messages
        .as_ref()
        .ok_or(ValidationError::MissingMessages)?;
    if raw.is_empty() {
        return Err(ValidationError::EmptyMessages);
    }
    raw.iter()
        .enumerate()
        .map(|(index, m)| {
            let role_str = m
                .role
                .as_deref()
                .ok_or(ValidationError::MissingRole { index })?;
            let role = Role::parse(role_str).ok_or_else(|| ValidationError::UnknownRole {
                index,
                role: role_str.to_string(),
            })?;
            let content = match &m.content {
                Some(c) => content_text(index, c)?,
                // An assistant turn may carry no content (e.g. only tool calls).
                None if role == Role::Assistant => String::new(),
                None => return Err(ValidationError::MissingContent { index }),
            };
            Ok(PromptMessage { role, content })
        })
        .collect()
}

fn content_text(index: usize, content: &MessageContent) -> Result<String, ValidationError> {
    match content {
        MessageContent::Text(t) => Ok(t.clone()),
        MessageContent::Parts(parts) => {
            let mut text = String::new();
            for p in parts {
                if p.kind != "text" {
                    return Err(ValidationError::UnsupportedContentPart {
                        index,
                        kind: p.kind.clone(),
                    });
                }
                text.push_str(p.text.as_deref().unwrap_or(""));
            }
            Ok(text)
        }
    }
}

pub(super) fn check_n(req: &ChatCompletionRequest) -> Result<(), ValidationError> {
    match req.n {
        Some(n) if n != 1 => Err(ValidationError::UnsupportedN(n)),
        _ => Ok(()),
    }
}

pub(super) fn sampling(req: &ChatCompletionRequest) -> Result<SamplingParams, ValidationError> {
    let d = SamplingParams::default();
    let temperature = req.temperature.unwrap_or(d.temperature as f64);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ValidationError::TemperatureOutOfRange(temperature));
    }
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ValidationError::TopPOutOfRange(top_p));
    }
    let top_k = req.top_k.unwrap_or(0);
    if top_k < 0 {
        return Err(ValidationError::TopKOutOfRange(top_k));
    }
    let presence = penalty("presence_penalty", req.presence_penalty)?;
    let frequency = penalty("frequency_penalty", req.frequency_penalty)?;
    let repetition = req.repetition_penalty.unwrap_or(1.0);
    // Checked as the f32 the sampler divides by: 1e-50 is positive as f64 but 0 as f32, and a
    // subnormal f32 turns every seen logit infinite.
    let repetition_f32 = repetition as f32;
    if !(repetition_f32.is_normal() && repetition_f32 > 0.0 && repetition_f32 <= 10.0) {
        return Err(ValidationError::RepetitionPenaltyOutOfRange(repetition));
    }
    // Below this the logits divided by the temperature overflow f32 (1e-38 gave infinite logits
    // and garbage): treat it as the greedy decoding it tends to, as vLLM does.
    let temperature = if temperature < GREEDY_BELOW_TEMPERATURE {
        0.0
    } else {
        temperature
    };
    Ok(SamplingParams {
        temperature: temperature as f32,
        top_p: top_p as f32,
        top_k: top_k as usize,
        // Negative seeds are valid integers on the wire; reinterpret the bits.
        seed: req.seed.map(|s| s as u64),
        presence_penalty: presence as f32,
        frequency_penalty: frequency as f32,
        repetition_penalty: repetition as f32,
    })
}

/// Temperatures below this decode greedily.
pub const GREEDY_BELOW_TEMPERATURE: f64 = 1e-5;

fn penalty(param: &'static str, value: Option<f64>) -> Result<f64, ValidationError> {
    let v = value.unwrap_or(0.0);
    // The range check in f32, the type the sampler subtracts (NaN fails it too).
    if (-2.0..=2.0).contains(&(v as f32)) {
        Ok(v)
    } else {
        Err(ValidationError::PenaltyOutOfRange { param, value: v })
    }
}

/// `max_completion_tokens` supersedes the deprecated `max_tokens` when both are given.
pub(super) fn max_tokens(req: &ChatCompletionRequest) -> Result<Option<usize>, ValidationError> {
    let (param, value) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(v), _) => ("max_completion_tokens", v),
        (None, Some(v)) => ("max_tokens", v),
        (None, None) => return Ok(None),
    };
    if value < 1 {
        return Err(ValidationError::MaxTokensOutOfRange { param, value });
    }
    Ok(Some(value as usize))
}

pub(super) fn stop(
    req: &ChatCompletionRequest,
    limits: &Limits,
) -> Result<Vec<String>, ValidationError> {
    let stops = match &req.stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s.clone()],
        Some(StopSpec::Many(v)) => v.clone(),
    };
    if stops.len() > limits.max_stop_strings {
        return Err(ValidationError::TooManyStops {
            count: stops.len(),
            max: limits.max_stop_strings,
        });
    }
    if stops.iter().any(|s| s.is_empty()) {
        return Err(ValidationError::EmptyStop);
    }
    Ok(stops)
}

/// Resolves max_tokens against the context window: what is left when not given.
pub(super) fn fit_context(
    prompt: usize,
    requested: Option<usize>,
    limits: &Limits,
) -> Result<usize, ValidationError> {
    let context = limits.context_length;
    if prompt >= context {
        return Err(ValidationError::PromptTooLong { prompt, context });
    }
    match requested {
        None => Ok(context - prompt),
        Some(max_tokens) if prompt + max_tokens > context => {
            Err(ValidationError::ContextExceeded {
                prompt,
                max_tokens,
                context,
            })
        }
        Some(max_tokens) => Ok(max_tokens),
    }
}
