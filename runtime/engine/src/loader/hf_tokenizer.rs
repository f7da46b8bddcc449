//! The text side of a Hugging Face checkpoint directory: `tokenizer.json` (loaded as is by the
//! `tokenizers` crate) and `tokenizer_config.json` (chat template, BOS/EOS as strings or
//! `AddedToken` objects, `add_bos_token`, `model_max_length`, added tokens), plus the optional
//! `generation_config.json` end-of-sequence ids. `load_hf_text` gives the engine the same
//! `TextTokenizer` and `ChatTemplate` the GGUF path gives.
//!
//! Chat prompts follow transformers' `apply_chat_template`: the rendered text is tokenized
//! without adding special tokens (the template itself writes `{{ bos_token }}`), so the
//! tokenizer built here never prepends BOS on its own.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use tokenizers::Tokenizer;

use super::chat_template::ChatTemplate;
use super::tokenizer::{TextTokenizer, TokenizerError};
use super::vocab::{gpt2_piece, spm_piece, TYPE_BYTE};
use super::LoadError;

/// `model_max_length` at or above this is transformers' "no limit" sentinel (1e30).
const NO_LIMIT: f64 = 1e15;

/// A chat template field: one string, or a list of named templates (`default`, `tool_use`...).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NamedTemplate {
    pub name: String,
    pub template: String,
}

/// A special token: a plain string or a serialized `AddedToken` (`{"content": ..}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenField {
    Text(String),
    Added { content: String },
}

impl TokenField {
    pub fn content(&self) -> &str {
        match self {
            Self::Text(s) | Self::Added { content: s } => s,
        }
    }
}

/// The fields of `tokenizer_config.json` the server uses; everything else is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenizerConfig {
    #[serde(default)]
    pub chat_template: Option<TemplateField>,
    #[serde(default)]
    pub bos_token: Option<TokenField>,
    #[serde(default)]
    pub eos_token: Option<TokenField>,
    #[serde(default)]
    pub add_bos_token: Option<bool>,
    #[serde(default)]
    pub model_max_length: Option<f64>,
}

impl TokenizerConfig {
    /// The chat template source: the single string, or the list entry named `default` (or the
    /// only entry), as transformers picks it.
    pub fn template(&self) -> Result<Option<String>, LoadError> {
        match &self.chat_template {
            None => Ok(None),
            Some(TemplateField::One(s)) => Ok(Some(s.clone())),
            Some(TemplateField::Named(list)) => {
                let pick = list
                    .iter()
                    .find(|t| t.name == "default")
                    .or(if list.len() == 1 { list.first() } else { None });
                pick.map(|t| Some(t.template.clone()))
                    .ok_or_else(|| LoadError::BadMetadata {
                        key: "tokenizer_config.json chat_template".into(),
                        reason: "a list of templates without one named \"default\"".into(),
                    })
            }
        }
    }

    /// `model_max_length`, unless it is the "no limit" sentinel.
    pub fn max_length(&self) -> Option<usize> {
        self.model_max_length
            .filter(|&n| n.is_finite() && n > 0.0 && n < NO_LIMIT)
            .map(|n| n as usize)
    }
}

/// What `load_hf_text` returns for a checkpoint directory.
#[derive(Debug)]
pub struct HfText {
    pub tokenizer: TextTokenizer,
    pub chat_template: ChatTemplate,
    /// `model_max_length` of tokenizer_config.json, when it sets a real limit.
    pub model_max_length: Option<usize>,
    pub config: TokenizerConfig,
}

/// How token strings of the vocabulary turn into output bytes, from tokenizer.json's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceStyle {
    /// GPT-2 byte-level alphabet (DeepSeek V2/V3/R1, Llama 3, Qwen2).
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xHH>` a raw byte (Llama 2 style).
    SentencePiece,
    /// The token string is the text.
    Plain,
}

fn piece_style(tokenizer_json: &serde_json::Value) -> PieceStyle {
    let decoder = &tokenizer_json["decoder"];
    let mut kinds: Vec<&str> = decoder["type"].as_str().into_iter().collect();
    if let Some(list) = decoder["decoders"].as_array() {
        kinds.extend(list.iter().filter_map(|d| d["type"].as_str()));
    }
    if kinds.contains(&"ByteLevel") {
        PieceStyle::ByteLevel
    } else if kinds
        .iter()
        .any(|k| matches!(*k, "Metaspace" | "ByteFallback" | "Replace"))
    {
        PieceStyle::SentencePiece
    } else {
        PieceStyle::Plain
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(file: &str, reason: impl ToString) -> LoadError {
    LoadError::BadMetadata {
        key: file.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads `tokenizer_config.json` of `dir`; a directory without one gets the defaults.
pub fn read_tokenizer_config(dir: &Path) -> Result<TokenizerConfig, LoadError> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(TokenizerConfig::default());
    }
    serde_json::from_str(&read(&path)?).map_err(|e| bad("tokenizer_config.json", e))
}

/// The model's own template: tokenizer_config.json's, else `chat_template.jinja`, else
/// `chat_template.json` (where newer transformers versions save it).
fn model_template(dir: &Path, config: &TokenizerConfig) -> Result<Option<String>, LoadError> {
    if let Some(t) = config.template()? {
        return Ok(Some(t));
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read(&jinja).map(Some);
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        #[derive(Deserialize)]
        struct File {
            chat_template: TemplateField,
        }
        let f: File =
            serde_json::from_str(&read(&json)?).map_err(|e| bad("chat_template.json", e))?;
        return TokenizerConfig {
            chat_template: Some(f.chat_template),
            ..TokenizerConfig::default()
        }
        .template();
    }
    Ok(None)
}

/// `eos_token_id` of generation_config.json (a number or a list), if the file exists.
fn generation_eos_ids(dir: &Path) -> Result<Vec<u32>, LoadError> {
    let path = dir.join("generation_config.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(&read(&path)?).map_err(|e| bad("generation_config.json", e))?;
    let ids = match &v["eos_token_id"] {
        serde_json::Value::Array(list) => list.iter().filter_map(|x| x.as_u64()).collect(),
        x => x.as_u64().into_iter().collect::<Vec<_>>(),
    };
    Ok(ids.into_iter().map(|id| id as u32).collect())
}

/// Builds the `TextTokenizer` from a tokenizer.json text and the config's special tokens.
pub fn tokenizer_from_json(
    json_text: &str,
    config: &TokenizerConfig,
    extra_eos: &[u32],
) -> Result<TextTokenizer, LoadError> {
    let build = |e: String| LoadError::Tokenizer(TokenizerError::Build(e));
    let mut value: serde_json::Value =
        serde_json::from_str(json_text).map_err(|e| build(e.to_string()))?;
    promote_marker_tokens(&mut value);
    let tokenizer = Tokenizer::from_str(&value.to_string()).map_err(|e| build(e.to_string()))?;
    let style = piece_style(&value);
    let added = tokenizer.get_added_tokens_decoder();
    let n = tokenizer.get_vocab_size(true);
    let mut tokens = Vec::with_capacity(n);
    let mut pieces = Vec::with_capacity(n);
    for id in 0..n as u32 {
        let text = tokenizer.id_to_token(id).unwrap_or_default();
        let piece = match added.get(&id) {
            // Special tokens (BOS, EOS, chat markers) print nothing, as with skip_special_tokens.
            Some(t) if t.special => Vec::new(),
            Some(t) => t.content.as_bytes().to_vec(),
            None => match style {
                PieceStyle::ByteLevel => gpt2_piece(&text, 1),
                PieceStyle::SentencePiece if is_byte_token(&text) => spm_piece(&text, TYPE_BYTE),
                PieceStyle::SentencePiece => spm_piece(&text, 1),
                PieceStyle::Plain => text.as_bytes().to_vec(),
            },
        };
        tokens.push(text);
        pieces.push(piece);
    }
    let id_of = |field: &Option<TokenField>, key: &str| -> Result<Option<u32>, LoadError> {
        match field {
            None => Ok(None),
            Some(f) => tokenizer.token_to_id(f.content()).map(Some).ok_or_else(|| {
                bad(
                    "tokenizer_config.json",
                    format!("{key} {:?} is not in the vocabulary", f.content()),
                )
            }),
        }
    };
    let bos = id_of(&config.bos_token, "bos_token")?;
    let mut eos_ids: Vec<u32> = id_of(&config.eos_token, "eos_token")?.into_iter().collect();
    for &id in extra_eos {
        if (id as usize) < n && !eos_ids.contains(&id) {
            eos_ids.push(id);
        }
    }
    Ok(TextTokenizer::from_parts(
        tokenizer, pieces, tokens, bos, eos_ids, false,
    ))
}

/// Marks added tokens that look like chat markers (`<|...|>`, `<｜...｜>`) as special, as
/// llama.cpp's GGUF converter makes them control tokens. DeepSeek's tokenizer.json lists
/// `<｜User｜>` and `<｜Assistant｜>` with `"special": false`; as special tokens they can be
/// kept out of user text (`TextTokenizer::encode_plain`), and they print nothing.
fn promote_marker_tokens(value: &mut serde_json::Value) {
    let Some(added) = value.get_mut("added_tokens").and_then(|a| a.as_array_mut()) else {
        return;
    };
    for token in added {
        let looks_special = token["content"]
            .as_str()
            .is_some_and(looks_like_chat_marker);
        if looks_special {
            token["special"] = serde_json::Value::Bool(true);
        }
    }
}

fn looks_like_chat_marker(t: &str) -> bool {
    let ascii = t.starts_with("<|") && t.ends_with("|>");
    let fullwidth = t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>");
    t.len() > 4 && (ascii || fullwidth)
}

fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>')
}

/// Loads tokenizer.json and tokenizer_config.json (and generation_config.json's EOS ids) of a
/// checkpoint directory. `template_override` replaces the model's chat template.
pub fn load_hf_text(dir: &Path, template_override: Option<&Path>) -> Result<HfText, LoadError> {
    let tokenizer_path: PathBuf = dir.join("tokenizer.json");
    let config = read_tokenizer_config(dir)?;
    let tokenizer =
        tokenizer_from_json(&read(&tokenizer_path)?, &config, &generation_eos_ids(dir)?)?;
    let token = |f: &Option<TokenField>| {
        f.as_ref()
            .map(|t| t.content().to_string())
            .unwrap_or_default()
    };
    let chat_template = ChatTemplate::resolve(
        model_template(dir, &config)?,
        template_override,
        token(&config.bos_token),
        token(&config.eos_token),
    )?;
    tracing::info!(
        vocab = tokenizer.vocab_size(),
        bos = ?tokenizer.bos_token_id(),
        eos = ?tokenizer.eos_token_ids(),
        "tokenizer.json loaded"
    );
    Ok(HfText {
        tokenizer,
        chat_template,
        model_max_length: config.max_length(),
        config,
    })
}

#[cfg(test)]
#[path = "hf_tokenizer_tests.rs"]
mod tests;
