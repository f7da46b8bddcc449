//! Parse, don't validate: turns a wire `ChatCompletionRequest` into a `ValidRequest` exactly once,
//! with every default resolved (prompt tokens, max_tokens, sampling). One error variant per rule,
//! each naming the offending `param`; `deepseek_server::error` maps them to HTTP.

mod rules;

use thiserror::Error;

use crate::ChatCompletionRequest;

pub use rules::Role;

/// One chat message after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    pub role: Role,
    pub content: String,
}

/// Renders the chat template and tokenizes it; implemented over the loaded model in `deepseek-server`.
pub trait PromptBuilder: Send + Sync {
    /// Prompt token ids for the conversation, ending with the assistant turn's header.
    fn prompt_tokens(&self, messages: &[PromptMessage]) -> Result<Vec<u32>, String>;

    /// How the model's replies mark reasoning apart from the answer; `None`: they do not (or
    /// the server was told not to split it). The API splits replies accordingly.
    fn reasoning(&self) -> Option<ReasoningFormat> {
        None
    }
}

/// A reasoning format of model output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningFormat {
    /// `<think>reasoning</think>answer` (DeepSeek-R1). `opened_by_prompt`: the generation
    /// prompt already wrote `<think>`, so the reply starts inside the block.
    Think { opened_by_prompt: bool },
}

/// Sampling settings with every default resolved. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// None: the engine draws a fresh seed.
    pub seed: Option<u64>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// 1.0 disables it (HF semantics: divides positive logits of every seen token).
    pub repetition_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
        }
    }
}

/// A request the engine can run as is.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    pub messages: Vec<PromptMessage>,
    pub prompt_tokens: Vec<u32>,
    /// Most tokens to generate: the request's limit, or what is left of the context.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop strings (never empty strings); the output ends before the first match.
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// Generation does not end at the model's EOS token (only at max_tokens or a stop string).
    pub ignore_eos: bool,
}

/// What validation needs to know about the server.
#[derive(Debug, Clone)]
pub struct Limits {
    pub served_model_name: String,
    pub context_length: usize,
    pub max_stop_strings: usize,
}

/// One variant per rule. `param()` names the request field, `code()` is a stable label.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ValidationError {
    #[error("The model `{0}` does not exist")]
    UnknownModel(String),
    #[error("'messages' is a required property")]
    MissingMessages,
    #[error("'messages' must contain at least one message")]
    EmptyMessages,
    #[error("messages[{index}].role is missing")]
    MissingRole { index: usize },
    #[error("messages[{index}].role '{role}' is not one of 'system', 'developer', 'user', 'assistant', 'tool'")]
    UnknownRole { index: usize, role: String },
    #[error("messages[{index}].content is missing")]
    MissingContent { index: usize },
    #[error(
        "messages[{index}].content has a part of type '{kind}'; only 'text' parts are supported"
    )]
    UnsupportedContentPart { index: usize, kind: String },
    #[error("temperature {0} is out of range: it must be between 0 and 2")]
    TemperatureOutOfRange(f64),
    #[error("top_p {0} is out of range: it must be greater than 0 and at most 1")]
    TopPOutOfRange(f64),
    #[error("top_k {0} is out of range: it must be 0 (disabled) or more")]
    TopKOutOfRange(i64),
    #[error("{param} {value} is out of range: it must be at least 1")]
    MaxTokensOutOfRange { param: &'static str, value: i64 },
    #[error("{param} {value} is out of range: it must be between -2 and 2")]
    PenaltyOutOfRange { param: &'static str, value: f64 },
    #[error("repetition_penalty {0} is out of range: it must be greater than 0 and at most 10")]
    RepetitionPenaltyOutOfRange(f64),
    #[error("n={0} is not supported: only n=1 is")]
    UnsupportedN(i64),
    #[error("stop has {count} strings; at most {max} are allowed")]
    TooManyStops { count: usize, max: usize },
    #[error("stop strings must not be empty")]
    EmptyStop,
    #[error("the chat template could not be rendered: {0}")]
    Template(String),
    #[error("the prompt has {prompt} tokens, which leaves no room in the {context}-token context")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("the prompt ({prompt} tokens) plus max_tokens ({max_tokens}) exceeds the {context}-token context")]
    ContextExceeded {
        prompt: usize,
        max_tokens: usize,
        context: usize,
    },
}

impl ValidationError {
    /// The request field at fault, for the error body's `param`.
    pub fn param(&self) -> Option<&'static str> {
        use ValidationError::*;
        Some(match self {
            UnknownModel(_) => "model",
            MissingMessages | EmptyMessages | MissingRole { .. } | UnknownRole { .. } => "messages",
            MissingContent { .. } | UnsupportedContentPart { .. } | Template(_) => "messages",
            TemperatureOutOfRange(_) => "temperature",
            TopPOutOfRange(_) => "top_p",
            TopKOutOfRange(_) => "top_k",
            MaxTokensOutOfRange { param, .. } | PenaltyOutOfRange { param, .. } => param,
            RepetitionPenaltyOutOfRange(_) => "repetition_penalty",
            UnsupportedN(_) => "n",
            TooManyStops { .. } | EmptyStop => "stop",
            PromptTooLong { .. } | ContextExceeded { .. } => "messages",
        })
    }

    /// Stable label for the error body's `code` and the errors metric.
    pub fn code(&self) -> &'static str {
        use ValidationError::*;
        match self {
            UnknownModel(_) => "model_not_found",
            MissingMessages => "missing_messages",
            EmptyMessages => "empty_messages",
            MissingRole { .. } => "missing_role",
            UnknownRole { .. } => "unknown_role",
            MissingContent { .. } => "missing_content",
            UnsupportedContentPart { .. } => "unsupported_content_part",
            TemperatureOutOfRange(_) | TopPOutOfRange(_) | TopKOutOfRange(_) => "out_of_range",
            MaxTokensOutOfRange { .. } | PenaltyOutOfRange { .. } => "out_of_range",
            RepetitionPenaltyOutOfRange(_) => "out_of_range",
            UnsupportedN(_) => "unsupported_n",
            TooManyStops { .. } | EmptyStop => "invalid_stop",
            Template(_) => "template_error",
            PromptTooLong { .. } | ContextExceeded { .. } => "context_length_exceeded",
        }
    }
}

/// Validates `req` against `limits`, renders and tokenizes the prompt, resolves every default.
pub fn validate(
    req: &ChatCompletionRequest,
    limits: &Limits,
    prompt: &dyn PromptBuilder,
) -> Result<ValidRequest, ValidationError> {
    rules::check_model(req, limits)?;
    let messages = rules::messages(req)?;
    rules::check_n(req)?;
    let sampling = rules::sampling(req)?;
    let requested_max = rules::max_tokens(req)?;
    let stop = rules::stop(req, limits)?;
    let prompt_tokens = prompt
        .prompt_tokens(&messages)
        .map_err(ValidationError::Template)?;
    let max_tokens = rules::fit_context(prompt_tokens.len(), requested_max, limits)?;
    Ok(ValidRequest {
        messages,
        prompt_tokens,
        max_tokens,
        sampling,
        stop,
        stream: req.stream.unwrap_or(false),
        include_usage: req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        ignore_eos: req.ignore_eos.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests;
