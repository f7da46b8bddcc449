//! How a GGUF vocabulary becomes a `tokenizers::Tokenizer` and a per-token byte table:
//! byte-level BPE (`gpt2`) with llama.cpp's pre-tokenizer regexes, SentencePiece-style BPE
//! (`llama`) with merges ranked by token score and byte fallback, control tokens as special
//! added tokens.

use std::collections::HashMap;

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
use super::tokenizer::{GgufVocab, TokenizerError};

/// GGUF `tokenizer.ggml.token_type` values.
pub(crate) const TYPE_CONTROL: i32 = 3;
pub(crate) const TYPE_USER_DEFINED: i32 = 4;
pub(crate) const TYPE_UNUSED: i32 = 5;
pub(crate) const TYPE_BYTE: i32 = 6;

/// GPT-2's reversible byte <-> printable-char mapping (`bytes_to_unicode`).
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
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

pub(crate) fn gpt2_piece(token: &str, ty: i32) -> Vec<u8> {
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

pub(crate) fn spm_piece(token: &str, ty: i32) -> Vec<u8> {
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

pub(crate) fn build_gpt2(v: &GgufVocab) -> Result<Tokenizer, TokenizerError> {
    let pre = v.pre.as_deref().unwrap_or("default");
    let regexes =
        regexes_for(pre).ok_or_else(|| TokenizerError::UnknownPreTokenizer(pre.into()))?;
    let merges = v
        .merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    TokenizerError::Inconsistent(format!("merge without a space: {m:?}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(v), merges)
        .ignore_merges(matches!(pre, "llama3" | "llama-v3" | "llama-bpe"))
        .build()
        .map_err(build_error)?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for re in regexes {
        let split = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
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
    let vocab: HashMap<&str, u32> = v
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect();
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
                (vocab.contains_key(l) && vocab.contains_key(r))
                    .then(|| (l.to_string(), r.to_string(), score))
            })
            .collect();
        local.sort_by_key(|(l, r, _)| {
            (
                vocab.get(l.as_str()).copied(),
                vocab.get(r.as_str()).copied(),
            )
        });
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

pub(crate) fn build_spm(v: &GgufVocab) -> Result<Tokenizer, TokenizerError> {
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
pub(crate) fn add_special_tokens(
    tokenizer: &mut Tokenizer,
    v: &GgufVocab,
) -> Result<(), TokenizerError> {
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
