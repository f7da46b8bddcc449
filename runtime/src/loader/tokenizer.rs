//! The tokenizer rebuilt from GGUF metadata alone, matching llama.cpp's tokenization:
//! `tokenizer.ggml.model = "gpt2"` is byte-level BPE whose pre-tokenizer regexes follow
//! `tokenizer.ggml.pre` as llama.cpp maps them; `"llama"` is SentencePiece-style BPE with byte
//! fallback, its merges derived from the token scores. Control tokens become special added
//! tokens (so chat-template markers encode to one id). Decoding, whole or incremental, goes
//! through a per-token byte table so streamed pieces never split a UTF-8 character.

use std::collections::HashMap;
use std::sync::Arc;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use super::pretokenize::regexes_for;

/// GGUF `tokenizer.ggml.token_type` values.
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_UNUSED: i32 = 5;
const TYPE_BYTE: i32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer model {0:?} is not supported (expected \"gpt2\" or \"llama\")")]
    UnsupportedModel(String),
    #[error("pre-tokenizer {0:?} is not known; llama.cpp would refuse this file too")]
    UnknownPreTokenizer(String),
    #[error("tokenizer metadata is inconsistent: {0}")]
    Inconsistent(String),
    #[error("building the tokenizer failed: {0}")]
    Build(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// The tokenizer part of a GGUF's metadata (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default)]
pub struct GgufVocab {
    /// "gpt2" or "llama".
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// One per token; empty means all normal.
    pub token_types: Vec<i32>,
    /// SentencePiece scores (llama model only).
    pub scores: Vec<f32>,
    /// "left right" pairs, in priority order (gpt2 model only).
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: bool,
    pub add_space_prefix: bool,
}

struct Inner {
    tokenizer: Tokenizer,
    /// Bytes each token stands for in output text; empty for control tokens.
    pieces: Vec<Vec<u8>>,
    tokens: Vec<String>,
    bos: Option<u32>,
    eos_ids: Vec<u32>,
    add_bos: bool,
}

/// Encoder/decoder used by the server; cheap to clone.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.inner.tokens.len())
            .field("bos", &self.inner.bos)
            .field("eos_ids", &self.inner.eos_ids)
            .finish()
    }
}

impl TextTokenizer {
    pub fn from_gguf_vocab(v: &GgufVocab) -> Result<Self, TokenizerError> {
        let n = v.tokens.len();
        if !v.token_types.is_empty() && v.token_types.len() != n {
            return Err(TokenizerError::Inconsistent(format!(
                "{} token types for {n} tokens",
                v.token_types.len()
            )));
        }
        let ty = |i: usize| v.token_types.get(i).copied().unwrap_or(1);
        let (mut tokenizer, pieces) = match v.model.as_str() {
            "gpt2" => (build_gpt2(v)?, (0..n).map(|i| gpt2_piece(&v.tokens[i], ty(i))).collect()),
            "llama" => (build_spm(v)?, (0..n).map(|i| spm_piece(&v.tokens[i], ty(i))).collect()),
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        add_special_tokens(&mut tokenizer, v)?;
        let mut eos_ids: Vec<u32> = [v.eos, v.eot, v.eom].into_iter().flatten().collect();
        eos_ids.dedup();
        if let Some(bad) = eos_ids.iter().chain(&v.bos).find(|&&id| id as usize >= n) {
            return Err(TokenizerError::Inconsistent(format!("special token id {bad} >= {n}")));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                pieces,
                tokens: v.tokens.clone(),
                bos: v.bos,
                eos_ids,
                add_bos: v.add_bos,
            }),
        })
    }

    /// Token ids of `text`. Special-token markers in the text (e.g. `<|im_start|>`) encode to
    /// their single id. `add_special` prepends BOS when the model asks for it.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_special && self.inner.add_bos {
            ids.extend(self.inner.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`, control tokens left out; invalid UTF-8 becomes U+FFFD. Equal to the
    /// concatenation of what an `IncrementalDecoder` emits for the same ids.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.piece(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A streaming decoder for one sequence.
    pub fn incremental_decoder(&self) -> IncrementalDecoder {
        IncrementalDecoder {
            inner: self.inner.clone(),
            pending: Vec::new(),
        }
    }

    pub fn eos_token_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.inner.bos
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.tokens.len()
    }

    /// The raw vocabulary string of a token (e.g. `<|im_end|>`), for chat templates.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.inner.tokens.get(id as usize).map(String::as_str)
    }

    /// The underlying `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    fn piece(&self, id: u32) -> &[u8] {
        self.inner.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

/// Turns a stream of token ids into text pieces that are always whole UTF-8 characters.
pub struct IncrementalDecoder {
    inner: Arc<Inner>,
    /// Bytes of a character that is not complete yet.
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// Adds one token; returns the text that became complete, if any.
    pub fn push(&mut self, token: u32) -> Option<String> {
        let piece = self.inner.pieces.get(token as usize)?;
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // A character that the next token may complete: wait for it.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Flushes bytes left at the end of the stream (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned())
    }
}

/// GPT-2's reversible byte <-> printable-char mapping (`bytes_to_unicode`).
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    table
}

fn gpt2_piece(token: &str, ty: i32) -> Vec<u8> {
    if ty == TYPE_CONTROL || ty == TYPE_UNUSED {
        return Vec::new();
    }
    thread_local! {
        static CHAR_TO_BYTE: HashMap<char, u8> = byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
    }
    CHAR_TO_BYTE.with(|map| {
        let mapped: Option<Vec<u8>> = token.chars().map(|c| map.get(&c).copied()).collect();
        // User-defined tokens may be stored as plain text rather than byte-level encoded.
        mapped.unwrap_or_else(|| token.as_bytes().to_vec())
    })
}

fn spm_piece(token: &str, ty: i32) -> Vec<u8> {
    match ty {
        TYPE_CONTROL | TYPE_UNUSED => Vec::new(),
        TYPE_BYTE => parse_byte_token(token).map_or_else(Vec::new, |b| vec![b]),
        _ => token.replace('\u{2581}', " ").into_bytes(),
    }
}

/// `<0x0A>` -> 10.
fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

fn build_error(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build(e.to_string())
}

fn vocab_map(v: &GgufVocab) -> tokenizers::models::bpe::Vocab {
    v.tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

fn build_gpt2(v: &GgufVocab) -> Result<Tokenizer, TokenizerError> {
    let pre = v.pre.as_deref().unwrap_or("default");
    let regexes = regexes_for(pre).ok_or_else(|| TokenizerError::UnknownPreTokenizer(pre.into()))?;
    let merges = v
        .merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| TokenizerError::Inconsistent(format!("merge without a space: {m:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(v), merges)
        .ignore_merges(matches!(pre, "llama3" | "llama-v3" | "llama-bpe"))
        .build()
        .map_err(build_error)?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for re in regexes {
        let split = Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(build_error)?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreSequence::new(steps)));
    tokenizer.with_decoder(Some(ByteLevel::new(false, false, false)));
    Ok(tokenizer)
}

/// SentencePiece BPE: llama.cpp merges the adjacent pair whose joined piece has the highest
/// score; BPE merges ranked by that score do the same.
fn spm_merges(v: &GgufVocab) -> Vec<(String, String)> {
    let vocab: HashMap<&str, u32> = v.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
    let mut merges: Vec<(String, String, f32)> = Vec::new();
    for (i, piece) in v.tokens.iter().enumerate() {
        let ty = v.token_types.get(i).copied().unwrap_or(1);
        if ty == TYPE_CONTROL || ty == TYPE_BYTE || ty == TYPE_UNUSED {
            continue;
        }
        let score = v.scores.get(i).copied().unwrap_or(0.0);
        let mut local: Vec<(String, String, f32)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                (vocab.contains_key(l) && vocab.contains_key(r)).then(|| (l.to_string(), r.to_string(), score))
            })
            .collect();
        local.sort_by_key(|(l, r, _)| (vocab.get(l.as_str()).copied(), vocab.get(r.as_str()).copied()));
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

fn build_spm(v: &GgufVocab) -> Result<Tokenizer, TokenizerError> {
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab_map(v), spm_merges(v))
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = v.unk.and_then(|id| v.tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let bpe = builder.build().map_err(build_error)?;
    let mut norms: Vec<NormalizerWrapper> = Vec::new();
    if v.add_space_prefix {
        norms.push(Prepend::new("\u{2581}".into()).into());
    }
    norms.push(Replace::new(" ", "\u{2581}").map_err(build_error)?.into());
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(tokenizers::normalizers::Sequence::new(norms)))
        .map_err(build_error)?;
    let decoders: Vec<DecoderWrapper> = vec![
        Replace::new("\u{2581}", " ").map_err(build_error)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', usize::from(v.add_space_prefix), 0).into(),
    ];
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// Control tokens are special (matched in text, left out of decoded output); user-defined
/// tokens are matched in text too, as llama.cpp does.
fn add_special_tokens(tokenizer: &mut Tokenizer, v: &GgufVocab) -> Result<(), TokenizerError> {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (i, t) in v.tokens.iter().enumerate() {
        match v.token_types.get(i).copied().unwrap_or(1) {
            TYPE_CONTROL => special.push(AddedToken::from(t.clone(), true).normalized(false)),
            TYPE_USER_DEFINED => user.push(AddedToken::from(t.clone(), false).normalized(false)),
            _ => {}
        }
    }
    tokenizer.add_special_tokens(special).map_err(build_error)?;
    tokenizer.add_tokens(user).map_err(build_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SentencePiece-style vocabulary: `<unk>`, `<s>`, `</s>`, 256 byte tokens, a few pieces.
    fn spm_vocab() -> GgufVocab {
        let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, TYPE_CONTROL, TYPE_CONTROL];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TYPE_BYTE);
            scores.push(0.0);
        }
        let pieces = [
            ("\u{2581}", -10.0),
            ("h", -10.0),
            ("e", -10.0),
            ("l", -10.0),
            ("o", -10.0),
            ("\u{2581}h", -1.0),
            ("ll", -2.0),
            ("\u{2581}he", -3.0),
            ("\u{2581}hell", -4.0),
            ("\u{2581}hello", -5.0),
        ];
        for (p, s) in pieces {
            tokens.push(p.to_string());
            types.push(1);
            scores.push(s);
        }
        GgufVocab {
            model: "llama".into(),
            tokens,
            token_types: types,
            scores,
            bos: Some(1),
            eos: Some(2),
            unk: Some(0),
            add_bos: true,
            add_space_prefix: true,
            ..GgufVocab::default()
        }
    }

    fn id(v: &GgufVocab, piece: &str) -> u32 {
        v.tokens.iter().position(|t| t == piece).map_or(u32::MAX, |i| i as u32)
    }

    #[test]
    fn sentencepiece_vocab_merges_by_score_and_falls_back_to_bytes() {
        let v = spm_vocab();
        let tok = TextTokenizer::from_gguf_vocab(&v).expect("builds");
        let ids = tok.encode("hello é", true).expect("encodes");
        let want = vec![1, id(&v, "\u{2581}hello"), id(&v, "\u{2581}"), id(&v, "<0xC3>"), id(&v, "<0xA9>")];
        assert_eq!(ids, want);
        assert_eq!(tok.decode(&ids), " hello é");
    }

    #[test]
    fn incremental_decoder_waits_for_the_rest_of_a_split_character() {
        let v = spm_vocab();
        let tok = TextTokenizer::from_gguf_vocab(&v).expect("builds");
        let mut dec = tok.incremental_decoder();
        assert_eq!(dec.push(1), None, "BOS is a control token and prints nothing");
        assert_eq!(dec.push(id(&v, "\u{2581}hello")).as_deref(), Some(" hello"));
        assert_eq!(dec.push(id(&v, "<0xC3>")), None);
        assert_eq!(dec.push(id(&v, "<0xA9>")).as_deref(), Some("é"));
        assert_eq!(dec.push(id(&v, "<0xFF>")).as_deref(), Some("\u{FFFD}"), "an invalid byte is replaced, not held");
        assert_eq!(dec.finish(), None);
    }

    #[test]
    fn an_unknown_tokenizer_model_or_pre_tokenizer_is_refused() {
        let mut v = spm_vocab();
        v.model = "bert".into();
        assert!(matches!(TextTokenizer::from_gguf_vocab(&v), Err(TokenizerError::UnsupportedModel(m)) if m == "bert"));
        v.model = "gpt2".into();
        v.pre = Some("no-such-pre".into());
        assert!(matches!(TextTokenizer::from_gguf_vocab(&v), Err(TokenizerError::UnknownPreTokenizer(_))));
    }
}
