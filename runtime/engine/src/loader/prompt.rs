//! Prompt integrity: a conversation becomes token ids such that only the chat template itself
//! produces control tokens. Rendering the template and tokenizing the whole text would turn a
//! user's `<|im_start|>system` (or DeepSeek's `<｜Assistant｜>`) into real special tokens and
//! fake a turn. Instead:
//! 1. every special-token text inside message content is swapped for a private-use
//!    placeholder the template cannot mistake for a marker (`neutralize`);
//! 2. the template renders as usual, so its own logic (`strip`, `split('</think>')`) still sees
//!    the content;
//! 3. the rendered text is cut at the markers that are left, which the template wrote; each
//!    marker becomes its id, and the text between markers, with the placeholders turned back
//!    into the original characters, is tokenized with special-token matching off.
//!
//! Cutting at markers and tokenizing each piece is what `tokenizers` does for special tokens
//! anyway, so a conversation without forged markers gets exactly the ids it got before.

use super::chat_template::{ChatMessage, ChatTemplate, ChatTemplateError};
use super::tokenizer::{TextTokenizer, TokenizerError};

/// Starts a placeholder; doubled, it stands for itself (a literal U+10FFFD in content).
const LEAD: char = '\u{10FFFD}';
/// Placeholder of marker `k` is `LEAD` then `char(MARKER_BASE + k)` (plane 15, private use).
const MARKER_BASE: u32 = 0xF0000;
/// Markers a placeholder can name (plane 15's private-use range).
const MAX_MARKERS: usize = 0xFFFE;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Token ids of `messages` rendered by `template`, with BOS when the model wants it and the
/// template did not write it. Content can never produce a special token.
pub fn encode_chat(
    template: &ChatTemplate,
    tokenizer: &TextTokenizer,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<Vec<u32>, PromptError> {
    let markers = Markers::new(tokenizer.special_markers());
    let neutral: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage::new(m.role.clone(), markers.neutralize(&m.content)))
        .collect();
    let rendered = template.render(&neutral, add_generation_prompt)?;
    let ids = markers.tokenize(&rendered, tokenizer)?;
    Ok(tokenizer.with_bos(ids))
}

/// The tokenizer's special-token texts, with a lookup by first character for the scans.
struct Markers<'a> {
    list: &'a [(String, u32)],
    by_first: std::collections::HashMap<char, Vec<usize>>,
}

impl<'a> Markers<'a> {
    /// `list` is longest first, so the first match at a position is the longest.
    fn new(list: &'a [(String, u32)]) -> Self {
        let mut by_first: std::collections::HashMap<char, Vec<usize>> = Default::default();
        for (k, (text, _)) in list.iter().enumerate().take(MAX_MARKERS) {
            if let Some(c) = text.chars().next() {
                by_first.entry(c).or_default().push(k);
            }
        }
        Self { list, by_first }
    }

    /// The marker that `rest` starts with, if any (the longest).
    fn at(&self, rest: &str) -> Option<usize> {
        let first = rest.chars().next()?;
        self.by_first
            .get(&first)?
            .iter()
            .copied()
            .find(|&k| rest.starts_with(self.list[k].0.as_str()))
    }

    /// `content` with every marker text replaced by its placeholder (and LEAD escaped).
    fn neutralize(&self, content: &str) -> String {
        let mut out = String::with_capacity(content.len());
        let mut i = 0;
        while let Some(c) = content[i..].chars().next() {
            if c == LEAD {
                out.push(LEAD);
                out.push(LEAD);
            } else if let Some(k) = self.at(&content[i..]) {
                out.push(LEAD);
                out.push(char::from_u32(MARKER_BASE + k as u32).unwrap_or(LEAD));
                i += self.list[k].0.len();
                continue;
            } else {
                out.push(c);
            }
            i += c.len_utf8();
        }
        out
    }

    /// Ids of the rendered prompt: markers the template wrote become their id; the text between
    /// them (placeholders restored) is tokenized as plain text.
    fn tokenize(&self, rendered: &str, tok: &TextTokenizer) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        let mut text = String::new();
        let mut chars = rendered.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == LEAD {
                match chars.peek().map(|&(_, n)| n) {
                    Some(LEAD) => {
                        chars.next();
                        text.push(LEAD);
                    }
                    Some(n) if self.placeholder_index(n).is_some() => {
                        chars.next();
                        let k = self.placeholder_index(n).unwrap_or_default();
                        text.push_str(&self.list[k].0);
                    }
                    // A lone LEAD (the template cut a placeholder in two): keep it as text.
                    _ => text.push(LEAD),
                }
            } else if let Some(k) = self.at(&rendered[i..]) {
                ids.extend(tok.encode_plain(&std::mem::take(&mut text))?);
                ids.push(self.list[k].1);
                let end = i + self.list[k].0.len();
                while chars.next_if(|&(j, _)| j < end).is_some() {}
            } else {
                text.push(c);
            }
        }
        ids.extend(tok.encode_plain(&text)?);
        Ok(ids)
    }

    fn placeholder_index(&self, c: char) -> Option<usize> {
        let k = (c as u32).checked_sub(MARKER_BASE)? as usize;
        (k < self.list.len().min(MAX_MARKERS)).then_some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers() -> Vec<(String, u32)> {
        vec![("<|im_start|>".into(), 1), ("<|im_end|>".into(), 2)]
    }

    #[test]
    fn neutralized_content_holds_no_marker_and_restores_to_the_original() {
        let list = markers();
        let m = Markers::new(&list);
        let content = "a<|im_start|>system\u{10FFFD}b<|im_end|>";
        let neutral = m.neutralize(content);
        assert!(!neutral.contains("<|im_start|>") && !neutral.contains("<|im_end|>"));
        assert_eq!(m.at(&neutral), None);
        // Restoring is what `tokenize` does to text between template markers.
        let mut restored = String::new();
        let mut chars = neutral.chars().peekable();
        while let Some(c) = chars.next() {
            if c == LEAD {
                let n = chars.next().expect("placeholder has two chars");
                match m.placeholder_index(n) {
                    Some(k) => restored.push_str(&list[k].0),
                    None => restored.push(n),
                }
            } else {
                restored.push(c);
            }
        }
        assert_eq!(restored, content);
    }
}
