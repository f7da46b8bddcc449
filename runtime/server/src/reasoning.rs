//! Reasoning output of R1-style models: the text between `<think>` and `</think>` is returned
//! as `reasoning_content` (on the message and on stream deltas), the rest as `content`, as
//! DeepSeek's own API does. The parser is incremental: the engine streams text pieces, and a tag
//! may arrive split over several pieces, so a piece's tail that could start a tag is held back
//! until the next piece decides it. R1 templates end the generation prompt with `<think>\n`, so
//! the output usually starts inside the think block (`opened_by_prompt`).

use deepseek_protocol::validate::ReasoningFormat;

pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";

/// `--reasoning-parser`: which reasoning format the server splits out of replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReasoningParserKind {
    /// On when the chat template knows `<think>` blocks (DeepSeek-R1 and its distills).
    #[default]
    Auto,
    /// `<think>...</think>`, as DeepSeek-R1 writes it.
    DeepseekR1,
    /// Everything the model writes is `content`.
    None,
}

impl ReasoningParserKind {
    /// The format to parse, given what the chat template tells: whether it mentions think tags
    /// at all, and whether its generation prompt opens a think block.
    pub fn resolve(
        self,
        template_mentions_think: bool,
        prompt_opens_think: bool,
    ) -> Option<ReasoningFormat> {
        let on = match self {
            Self::Auto => template_mentions_think || prompt_opens_think,
            Self::DeepseekR1 => true,
            Self::None => false,
        };
        on.then_some(ReasoningFormat::Think {
            opened_by_prompt: prompt_opens_think,
        })
    }
}

/// Text of one piece, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

impl Split {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing decided yet: the output may open with `<think>` (after whitespace).
    Start,
    /// Inside the think block; `fresh` while a repeated `<think>` may still be dropped.
    Thinking { fresh: bool },
    /// Just after `</think>`: whitespace before the answer is dropped.
    Closed,
    /// The answer: everything is content.
    Answer,
}

/// Splits one reply. Feed pieces in order with `push`, then call `finish` once.
#[derive(Debug, Clone)]
pub struct ReasoningParser {
    state: State,
    held: String,
}

impl ReasoningParser {
    pub fn new(format: ReasoningFormat) -> Self {
        let ReasoningFormat::Think { opened_by_prompt } = format;
        Self {
            state: if opened_by_prompt {
                State::Thinking { fresh: true }
            } else {
                State::Start
            },
            held: String::new(),
        }
    }

    /// The parts of `piece` (plus any text held back before) that are decided now.
    pub fn push(&mut self, piece: &str) -> Split {
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(piece);
        let mut out = Split::default();
        while !buf.is_empty() {
            match self.step(&mut buf, &mut out) {
                Progress::Continue => {}
                Progress::Hold => {
                    self.held = std::mem::take(&mut buf);
                }
            }
        }
        out
    }

    /// Whatever is still held back, at the end of the reply: a tag that never completed is text.
    pub fn finish(&mut self) -> Split {
        let rest = std::mem::take(&mut self.held);
        match self.state {
            State::Thinking { .. } => Split {
                reasoning: rest,
                content: String::new(),
            },
            State::Closed => Split::default(),
            State::Start | State::Answer => Split {
                reasoning: String::new(),
                content: rest,
            },
        }
    }

    /// Consumes a decided prefix of `buf` into `out`, or asks to hold `buf` for more text.
    fn step(&mut self, buf: &mut String, out: &mut Split) -> Progress {
        match self.state {
            State::Start => {
                let trimmed = buf.trim_start();
                if let Some(rest) = trimmed.strip_prefix(THINK_OPEN) {
                    *buf = rest.to_string();
                    self.state = State::Thinking { fresh: false };
                } else if trimmed.is_empty() || THINK_OPEN.starts_with(trimmed) {
                    // Whitespace, or the start of a tag: the next piece decides.
                    return Progress::Hold;
                } else {
                    self.state = State::Answer;
                }
            }
            State::Thinking { fresh: true } => {
                if let Some(rest) = buf.strip_prefix(THINK_OPEN) {
                    *buf = rest.to_string();
                } else if THINK_OPEN.starts_with(buf.as_str()) {
                    return Progress::Hold;
                }
                self.state = State::Thinking { fresh: false };
            }
            State::Thinking { fresh: false } => match buf.find(THINK_CLOSE) {
                Some(i) => {
                    out.reasoning.push_str(&buf[..i]);
                    *buf = buf[i + THINK_CLOSE.len()..].to_string();
                    self.state = State::Closed;
                }
                None => {
                    let keep = partial_tag_suffix(buf, THINK_CLOSE);
                    out.reasoning.push_str(&buf[..buf.len() - keep]);
                    *buf = buf[buf.len() - keep..].to_string();
                    if keep > 0 {
                        return Progress::Hold;
                    }
                }
            },
            State::Closed => {
                let trimmed = buf.trim_start();
                if trimmed.is_empty() {
                    buf.clear();
                } else {
                    *buf = trimmed.to_string();
                    self.state = State::Answer;
                }
            }
            State::Answer => out.content.push_str(&std::mem::take(buf)),
        }
        Progress::Continue
    }
}

/// The splitter of one reply: a `ReasoningParser` when the model reasons, else a pass-through
/// that makes everything `content`.
#[derive(Debug, Clone)]
pub struct ReplySplitter(Option<ReasoningParser>);

impl ReplySplitter {
    pub fn new(format: Option<ReasoningFormat>) -> Self {
        Self(format.map(ReasoningParser::new))
    }

    /// Whether replies carry `reasoning_content`.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn push(&mut self, piece: String) -> Split {
        match &mut self.0 {
            Some(p) => p.push(&piece),
            None => Split {
                reasoning: String::new(),
                content: piece,
            },
        }
    }

    pub fn finish(&mut self) -> Split {
        self.0
            .as_mut()
            .map(ReasoningParser::finish)
            .unwrap_or_default()
    }
}

enum Progress {
    Continue,
    Hold,
}

/// Length of the longest proper prefix of `tag` that `text` ends with (0 when none). Tags are
/// ASCII, so the split point is always a character boundary.
fn partial_tag_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&k| text.ends_with(&tag[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "reasoning_tests.rs"]
mod tests;
