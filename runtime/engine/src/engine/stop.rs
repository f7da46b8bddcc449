//! Stop strings over streamed text: the output ends before the first match, and text that could
//! still become the start of a stop string is held back until it cannot.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text that can be sent now (may be empty).
    Emit(String),
    /// A stop string matched: the text before it, then generation ends.
    Stopped(String),
}

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        self.held.push_str(text);
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..pos].to_string();
            self.held.clear();
            return StopOutcome::Stopped(before);
        }
        let keep = self.partial_match_len();
        let emit_len = self.held.len() - keep;
        let rest = self.held.split_off(emit_len);
        StopOutcome::Emit(std::mem::replace(&mut self.held, rest))
    }

    /// Held-back text, released when generation ends for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Longest suffix of the held text that is a proper prefix of some stop string.
    fn partial_match_len(&self) -> usize {
        let h = &self.held;
        let mut best = 0;
        for stop in &self.stops {
            for k in (best + 1..stop.len().min(h.len() + 1)).rev() {
                let start = h.len() - k;
                if h.is_char_boundary(start) && stop.starts_with(&h[start..]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(stops.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn passes_text_through_without_stop_strings() {
        assert_eq!(m(&[]).push("hello"), StopOutcome::Emit("hello".into()));
    }

    #[test]
    fn ends_before_a_stop_string_inside_one_piece() {
        assert_eq!(
            m(&["END"]).push("abcENDdef"),
            StopOutcome::Stopped("abc".into())
        );
    }

    #[test]
    fn holds_back_a_possible_stop_prefix_across_pieces() {
        let mut s = m(&["END"]);
        assert_eq!(s.push("abE"), StopOutcome::Emit("ab".into()));
        assert_eq!(s.push("N"), StopOutcome::Emit(String::new()));
        assert_eq!(s.push("D!"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn releases_held_text_when_the_prefix_does_not_continue() {
        let mut s = m(&["END"]);
        assert_eq!(s.push("xE"), StopOutcome::Emit("x".into()));
        assert_eq!(s.push("x"), StopOutcome::Emit("Ex".into()));
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins() {
        assert_eq!(
            m(&["c", "ab"]).push("xabc"),
            StopOutcome::Stopped("x".into())
        );
    }

    #[test]
    fn flush_returns_the_held_back_text() {
        let mut s = m(&["END"]);
        s.push("aEN");
        assert_eq!(s.flush(), "EN");
    }

    #[test]
    fn handles_multibyte_text_without_splitting_characters() {
        let mut s = m(&["世界"]);
        assert_eq!(s.push("你好世"), StopOutcome::Emit("你好".into()));
        assert_eq!(s.push("界"), StopOutcome::Stopped(String::new()));
    }
}
