//! Tests of the streaming `<think>` splitter: every way of cutting a reply into pieces gives
//! the same split as feeding it whole.

use super::*;

fn parser(opened_by_prompt: bool) -> ReasoningParser {
    ReasoningParser::new(ReasoningFormat::Think { opened_by_prompt })
}

/// Feeds `pieces` in order and returns the concatenated (reasoning, content).
fn run(opened: bool, pieces: &[&str]) -> (String, String) {
    let mut p = parser(opened);
    let (mut r, mut c) = (String::new(), String::new());
    for piece in pieces {
        let s = p.push(piece);
        r.push_str(&s.reasoning);
        c.push_str(&s.content);
    }
    let s = p.finish();
    r.push_str(&s.reasoning);
    c.push_str(&s.content);
    (r, c)
}

fn boundaries(text: &str) -> Vec<usize> {
    (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect()
}

/// Asserts the split of `text` for every cut into two and three pieces, and one piece per
/// character.
fn assert_every_split(opened: bool, text: &str, reasoning: &str, content: &str) {
    let want = (reasoning.to_string(), content.to_string());
    assert_eq!(run(opened, &[text]), want, "whole {text:?}");
    let cuts = boundaries(text);
    for &i in &cuts {
        assert_eq!(
            run(opened, &[&text[..i], &text[i..]]),
            want,
            "cut at {i} of {text:?}"
        );
        for &j in cuts.iter().filter(|&&j| j >= i) {
            let pieces = [&text[..i], &text[i..j], &text[j..]];
            assert_eq!(run(opened, &pieces), want, "cuts {i},{j} of {text:?}");
        }
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(run(opened, &refs), want, "one char at a time: {text:?}");
}

#[test]
fn output_inside_a_think_block_opened_by_the_prompt_is_split_at_the_closing_tag() {
    assert_every_split(
        true,
        "Let me think.\n</think>\n\nIt is 4.",
        "Let me think.\n",
        "It is 4.",
    );
}

#[test]
fn a_think_block_written_by_the_model_is_split_out() {
    assert_every_split(false, "<think>\nhmm\n</think>\n\nOK", "\nhmm\n", "OK");
}

#[test]
fn whitespace_before_the_models_think_tag_is_dropped() {
    assert_every_split(false, "\n\n<think>r</think>c", "r", "c");
}

#[test]
fn output_that_does_not_open_with_think_is_all_content() {
    assert_every_split(
        false,
        "Hello <think> world</think>",
        "",
        "Hello <think> world</think>",
    );
}

#[test]
fn a_repeated_think_tag_after_the_prompts_is_dropped() {
    assert_every_split(true, "<think>\nx</think>y", "\nx", "y");
}

#[test]
fn a_reply_cut_off_while_thinking_is_all_reasoning_including_a_partial_tag() {
    assert_every_split(true, "abc </thi", "abc </thi", "");
}

#[test]
fn only_the_first_closing_tag_ends_the_reasoning() {
    assert_every_split(true, "r</think>a</think>b", "r", "a</think>b");
}

#[test]
fn angle_brackets_that_are_not_the_tag_stay_in_the_reasoning() {
    assert_every_split(true, "a < b </th </think>c", "a < b </th ", "c");
}

#[test]
fn multibyte_text_is_split_on_character_boundaries() {
    assert_every_split(true, "é思考</think>答案😀", "é思考", "答案😀");
}

#[test]
fn an_empty_answer_after_the_think_block_is_empty_content() {
    assert_every_split(true, "r</think>\n\n", "r", "");
}

#[test]
fn a_partial_closing_tag_is_held_back_until_the_next_piece() {
    let mut p = parser(true);
    assert_eq!(
        p.push("abc</th"),
        Split {
            reasoning: "abc".into(),
            content: String::new()
        }
    );
    assert_eq!(
        p.push("ink>\n\nok"),
        Split {
            reasoning: String::new(),
            content: "ok".into()
        }
    );
}

#[test]
fn the_parser_kind_resolves_from_what_the_template_tells() {
    let think = |opened| {
        Some(ReasoningFormat::Think {
            opened_by_prompt: opened,
        })
    };
    assert_eq!(ReasoningParserKind::Auto.resolve(true, true), think(true));
    assert_eq!(ReasoningParserKind::Auto.resolve(true, false), think(false));
    assert_eq!(ReasoningParserKind::Auto.resolve(false, false), None);
    assert_eq!(
        ReasoningParserKind::DeepseekR1.resolve(false, false),
        think(false)
    );
    assert_eq!(ReasoningParserKind::None.resolve(true, true), None);
}
