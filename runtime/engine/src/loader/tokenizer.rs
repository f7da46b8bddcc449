//! The tokenizer rebuilt from GGUF metadata alone, matching llama.cpp's tokenization:
//! `tokenizer.ggml.model = "gpt2"` is byte-level BPE whose pre-tokenizer regexes follow
//! `tokenizer.ggml.pre` as llama.cpp maps them; `"llama"` is SentencePiece-style BPE with byte
//! fallback, its merges derived from the token scores. Control tokens become special added
//! tokens (so chat-template markers encode to one id). Decoding, whole or incremental, goes
//! through a per-token byte table so streamed pieces never split a UTF-8 character.

use std::sync::Arc;

use tokenizers::Tokenizer;

use super::vocab::{add_special_tokens, build_gpt2, build_spm, gpt2_piece, spm_piece};
#[cfg(test)]
use super::vocab::{TYPE_BYTE, TYPE_CONTROL};

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
    /// The same tokenizer with special-token matching off: marker text in it is plain text.
    plain: Tokenizer,
    /// Every special token's text and id, longest text first (see `special_markers`).
    markers: Vec<(String, u32)>,
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
            "gpt2" => (
                build_gpt2(v)?,
                (0..n).map(|i| gpt2_piece(&v.tokens[i], ty(i))).collect(),
            ),
            "llama" => (
                build_spm(v)?,
                (0..n).map(|i| spm_piece(&v.tokens[i], ty(i))).collect(),
            ),
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        add_special_tokens(&mut tokenizer, v)?;
        let mut eos_ids: Vec<u32> = [v.eos, v.eot, v.eom].into_iter().flatten().collect();
        eos_ids.dedup();
        if let Some(bad) = eos_ids.iter().chain(&v.bos).find(|&&id| id as usize >= n) {
            return Err(TokenizerError::Inconsistent(format!(
                "special token id {bad} >= {n}"
            )));
        }
        Ok(Self::from_parts(
            tokenizer,
            pieces,
            v.tokens.clone(),
            v.bos,
            eos_ids,
            v.add_bos,
        ))
    }

    /// A tokenizer built elsewhere (a Hugging Face `tokenizer.json`, see `hf_tokenizer`):
    /// `pieces[i]` are the bytes token `i` prints (empty for control tokens), `tokens[i]` its
    /// vocabulary string.
    pub(crate) fn from_parts(
        tokenizer: Tokenizer,
        pieces: Vec<Vec<u8>>,
        tokens: Vec<String>,
        bos: Option<u32>,
        eos_ids: Vec<u32>,
        add_bos: bool,
    ) -> Self {
        let mut plain = tokenizer.clone();
        plain.set_encode_special_tokens(true);
        let mut markers: Vec<(String, u32)> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special && !t.content.is_empty())
            .map(|(id, t)| (t.content, id))
            .collect();
        markers.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self {
            inner: Arc::new(Inner {
                tokenizer,
                plain,
                markers,
                pieces,
                tokens,
                bos,
                eos_ids,
                add_bos,
            }),
        }
    }

    /// Token ids of `text`. Special-token markers in the text (e.g. `<|im_start|>`) encode to
    /// their single id. `add_special` prepends BOS when the model asks for it (and the text
    /// does not already start with it).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        Ok(if add_special { self.with_bos(ids) } else { ids })
    }

    /// Token ids of `text` read as ordinary text: special-token markers in it (a forged
    /// `<|im_start|>`) tokenize like any other characters, never to their special id. No BOS.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .inner
            .plain
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `ids` with BOS in front when the model asks for it. Chat templates often start with
    /// `{{ bos_token }}` already: never send BOS twice.
    pub fn with_bos(&self, ids: Vec<u32>) -> Vec<u32> {
        let starts_with_bos = self.inner.bos.is_some() && ids.first() == self.inner.bos.as_ref();
        match self.inner.bos {
            Some(bos) if self.inner.add_bos && !starts_with_bos => {
                std::iter::once(bos).chain(ids).collect()
            }
            _ => ids,
        }
    }

    /// The special tokens' texts (chat markers, BOS, EOS) with their ids, longest text first,
    /// so a scan that takes the first match takes the longest.
    pub fn special_markers(&self) -> &[(String, u32)] {
        &self.inner.markers
    }

    /// Text of `ids`, control tokens left out; invalid UTF-8 becomes U+FFFD. Equal to the
    /// concatenation of what an `IncrementalDecoder` emits for the same ids.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.piece(id).iter().copied())
            .collect();
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
        self.inner
            .pieces
            .get(id as usize)
            .map_or(&[], Vec::as_slice)
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
        v.tokens
            .iter()
            .position(|t| t == piece)
            .map_or(u32::MAX, |i| i as u32)
    }

    #[test]
    fn sentencepiece_vocab_merges_by_score_and_falls_back_to_bytes() {
        let v = spm_vocab();
        let tok = TextTokenizer::from_gguf_vocab(&v).expect("builds");
        let ids = tok.encode("hello é", true).expect("encodes");
        let want = vec![
            1,
            id(&v, "\u{2581}hello"),
            id(&v, "\u{2581}"),
            id(&v, "<0xC3>"),
            id(&v, "<0xA9>"),
        ];
        assert_eq!(ids, want);
        assert_eq!(tok.decode(&ids), " hello é");
    }

    #[test]
    fn a_text_that_already_starts_with_bos_gets_no_second_one() {
        let v = spm_vocab();
        let tok = TextTokenizer::from_gguf_vocab(&v).expect("builds");
        let ids = tok.encode("<s>hello", true).expect("encodes");
        assert_eq!(ids, vec![1, id(&v, "\u{2581}hello")]);
        assert_eq!(
            tok.encode("hello", false).expect("encodes"),
            vec![id(&v, "\u{2581}hello")]
        );
    }

    #[test]
    fn incremental_decoder_waits_for_the_rest_of_a_split_character() {
        let v = spm_vocab();
        let tok = TextTokenizer::from_gguf_vocab(&v).expect("builds");
        let mut dec = tok.incremental_decoder();
        assert_eq!(
            dec.push(1),
            None,
            "BOS is a control token and prints nothing"
        );
        assert_eq!(dec.push(id(&v, "\u{2581}hello")).as_deref(), Some(" hello"));
        assert_eq!(dec.push(id(&v, "<0xC3>")), None);
        assert_eq!(dec.push(id(&v, "<0xA9>")).as_deref(), Some("é"));
        assert_eq!(
            dec.push(id(&v, "<0xFF>")).as_deref(),
            Some("\u{FFFD}"),
            "an invalid byte is replaced, not held"
        );
        assert_eq!(dec.finish(), None);
    }

    #[test]
    fn an_unknown_tokenizer_model_or_pre_tokenizer_is_refused() {
        let mut v = spm_vocab();
        v.model = "bert".into();
        assert!(
            matches!(TextTokenizer::from_gguf_vocab(&v), Err(TokenizerError::UnsupportedModel(m)) if m == "bert")
        );
        v.model = "gpt2".into();
        v.pre = Some("no-such-pre".into());
        assert!(matches!(
            TextTokenizer::from_gguf_vocab(&v),
            Err(TokenizerError::UnknownPreTokenizer(_))
        ));
    }
}
