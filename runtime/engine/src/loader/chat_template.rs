//! Chat templates: the Jinja template from the model (GGUF `tokenizer.chat_template`) or from an
//! override file, rendered with minijinja the way Hugging Face transformers renders it
//! (`trim_blocks`, `lstrip_blocks`, Python string methods via pycompat, `raise_exception`,
//! `strftime_now`, `bos_token` / `eos_token`, `add_generation_prompt`). DeepSeek's templates
//! (V2, V3, R1 and the R1 distills) render exactly as transformers renders them: see
//! tests/chat_template_deepseek.rs and its fixtures.

use std::path::{Path, PathBuf};

use minijinja::{context, Environment, ErrorKind};
use serde::Serialize;

const TEMPLATE_NAME: &str = "chat";

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("the model has no chat template (tokenizer.chat_template); pass --chat-template FILE")]
    Missing,
    #[error("reading chat template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chat template does not parse: {0}")]
    Syntax(String),
    #[error("chat template raised an exception: {0}")]
    Raised(String),
    #[error("rendering the chat template failed: {0}")]
    Render(String),
}

/// One message of a conversation as the template sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// The message as a template value: a map with `role` and `content`.
    fn to_value(&self) -> minijinja::Value {
        context! { role => &self.role, content => &self.content }
    }

    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.source.len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error is reported here, at load, not at the first request.
    pub fn new(
        source: String,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        // Hugging Face renders chat templates with trim_blocks and lstrip_blocks on.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        Ok(Self {
            env,
            source,
            bos_token,
            eos_token,
        })
    }

    /// Picks the template: the override file when given, else the model's own, else
    /// `ChatTemplateError::Missing`.
    pub fn resolve(
        from_model: Option<String>,
        override_path: Option<&Path>,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, ChatTemplateError> {
        let source = match override_path {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| ChatTemplateError::Read {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            None => from_model.ok_or(ChatTemplateError::Missing)?,
        };
        Self::new(source, bos_token, eos_token)
    }

    /// The prompt text for `messages`; `add_generation_prompt` opens the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatTemplateError::Render(describe(&e)))?;
        template
            .render(context! {
                messages => messages.iter().map(ChatMessage::to_value).collect::<Vec<_>>(),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidOperation
                    if e.detail().is_some_and(|d| d.starts_with(RAISED)) =>
                {
                    ChatTemplateError::Raised(
                        e.detail().unwrap_or_default()[RAISED.len()..].to_string(),
                    )
                }
                _ => ChatTemplateError::Render(describe(&e)),
            })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template knows `<think>` blocks (R1-style reasoning models strip earlier
    /// reasoning with them, or open one in the generation prompt).
    pub fn mentions_think(&self) -> bool {
        self.source.contains("<think>") || self.source.contains("</think>")
    }

    /// Whether the generation prompt leaves a `<think>` block open (R1 templates end it with
    /// `<think>\n`), so the reply starts inside the reasoning. Probed with a one-message
    /// conversation; a template that refuses the probe is taken as not opening one.
    pub fn prompt_opens_think(&self) -> bool {
        self.render(&[ChatMessage::new("user", "?")], true)
            .is_ok_and(|p| p.trim_end().ends_with("<think>"))
    }
}

const RAISED: &str = "raise_exception: ";

fn raise_exception(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

/// Python's `datetime.now().strftime(format)`, which some templates use for the date.
fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
}

/// The error with its causes, as one line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn smollm2() -> ChatTemplate {
        ChatTemplate::new(SMOLLM2.into(), "<|im_start|>".into(), "<|im_end|>".into())
            .expect("the SmolLM2 template compiles")
    }

    #[test]
    fn smollm2_template_renders_system_and_user_with_generation_prompt() {
        let out = smollm2()
            .render(
                &[
                    ChatMessage::new("system", "Be brief."),
                    ChatMessage::new("user", "Hi!"),
                ],
                true,
            )
            .expect("renders");
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_template_adds_its_default_system_prompt_without_generation_prompt() {
        let out = smollm2()
            .render(&[ChatMessage::new("user", "Hi!")], false)
            .expect("renders");
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        );
    }

    #[test]
    fn a_model_without_template_and_without_override_is_a_missing_template_error() {
        let err =
            ChatTemplate::resolve(None, None, String::new(), String::new()).expect_err("must fail");
        assert!(matches!(err, ChatTemplateError::Missing), "{err:?}");
    }

    #[test]
    fn an_override_file_replaces_the_models_template() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jinja");
        std::fs::write(&path, "{{ bos_token }}{% for m in messages %}[{{ m.role|upper }}]{{ m.content.strip() }}{% endfor %}")
            .expect("write");
        let t = ChatTemplate::resolve(
            Some(SMOLLM2.into()),
            Some(&path),
            "<s>".into(),
            "</s>".into(),
        )
        .expect("loads");
        let out = t
            .render(&[ChatMessage::new("user", "  hi  ")], true)
            .expect("renders");
        assert_eq!(out, "<s>[USER]hi");
    }

    #[test]
    fn a_missing_override_file_is_a_read_error() {
        let err = ChatTemplate::resolve(
            None,
            Some(Path::new("/nonexistent/t.jinja")),
            String::new(),
            String::new(),
        )
        .expect_err("must fail");
        assert!(matches!(err, ChatTemplateError::Read { .. }), "{err:?}");
    }

    #[test]
    fn raise_exception_in_the_template_is_a_raised_error_with_its_message() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}".into(),
            String::new(),
            String::new(),
        )
        .expect("compiles");
        let err = t
            .render(&[ChatMessage::new("assistant", "x")], false)
            .expect_err("must fail");
        match err {
            ChatTemplateError::Raised(msg) => assert_eq!(msg, "first must be user"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_template_with_a_syntax_error_fails_at_load() {
        let err = ChatTemplate::new("{% for %}".into(), String::new(), String::new())
            .expect_err("must fail");
        assert!(matches!(err, ChatTemplateError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn strftime_now_is_available_to_templates() {
        let t = ChatTemplate::new(
            "{{ strftime_now('%Y') }}".into(),
            String::new(),
            String::new(),
        )
        .expect("compiles");
        let year = t.render(&[], false).expect("renders");
        assert_eq!(year.len(), 4);
        assert!(year.chars().all(|c| c.is_ascii_digit()));
    }
}
