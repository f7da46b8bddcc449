//! Watching a forwarded SSE stream without buffering it: whether the backend sent an in-band
//! error event (the runtime reports a failure after its 200 as `data: {"error": ...}`), and
//! whether the bytes so far end at an event boundary (where the router may add an event of
//! its own). Events can be split across chunks, so a short tail of the last chunk is kept.

/// Longest prefix a match can straddle chunks with: `\ndata: {"error"` is 16 bytes.
const CARRY: usize = 16;

pub struct SseWatch {
    carry: Vec<u8>,
    saw_error: bool,
    at_boundary: bool,
}

impl Default for SseWatch {
    fn default() -> Self {
        // The stream's start is a line start, as if a newline came before it.
        Self {
            carry: b"\n".to_vec(),
            saw_error: false,
            at_boundary: true,
        }
    }
}

impl SseWatch {
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        if !self.saw_error {
            self.saw_error = (0..window.len()).any(|i| is_error_line(&window[i..]));
        }
        self.at_boundary = window.ends_with(b"\n\n");
        self.carry = window[window.len().saturating_sub(CARRY)..].to_vec();
    }

    /// The backend sent an error event.
    pub fn saw_error(&self) -> bool {
        self.saw_error
    }

    /// Everything forwarded so far ends with a complete event.
    pub fn at_boundary(&self) -> bool {
        self.at_boundary
    }
}

/// `\ndata: {"error"` (the space is optional in SSE).
fn is_error_line(s: &[u8]) -> bool {
    let Some(rest) = s.strip_prefix(b"\ndata:") else {
        return false;
    };
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    rest.starts_with(br#"{"error""#)
}

/// An OpenAI-shaped error event and the end marker, as the runtime ends a failed stream.
pub fn error_event(code: &str, message: &str, at_boundary: bool) -> bytes::Bytes {
    let body = serde_json::json!({
        "error": {"message": message, "type": "server_error", "param": null, "code": code}
    });
    // A half-sent event is closed first, so the error is an event of its own.
    let sep = if at_boundary { "" } else { "\n\n" };
    bytes::Bytes::from(format!("{sep}data: {body}\n\ndata: [DONE]\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_event_is_seen_even_split_across_chunks() {
        let mut w = SseWatch::default();
        w.feed(b"data: {\"choices\":[]}\n\ndata: {\"er");
        assert!(!w.saw_error());
        w.feed(b"ror\":{\"message\":\"boom\"}}\n\n");
        assert!(w.saw_error());
        assert!(w.at_boundary());
    }

    #[test]
    fn the_first_event_counts_and_content_mentioning_error_does_not() {
        let mut first = SseWatch::default();
        first.feed(b"data:{\"error\":{}}\n\n");
        assert!(first.saw_error());
        let mut content = SseWatch::default();
        content.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"\\ndata: {\\\"error\\\"\"}}]}\n\n",
        );
        assert!(!content.saw_error());
    }

    #[test]
    fn a_partial_event_is_not_a_boundary() {
        let mut w = SseWatch::default();
        w.feed(b"data: {\"choices\"");
        assert!(!w.at_boundary());
        assert!(error_event("x", "y", false).starts_with(b"\n\ndata: {"));
    }
}
