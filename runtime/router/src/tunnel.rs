//! Upgraded connections (WebSocket) spliced byte for byte between the client and the backend.
//! The tunnel has no timeout (a chat socket lives as long as the conversation) but it takes
//! part in the drain: after the shutdown signal it keeps running, and when the drain deadline
//! passes it closes a WebSocket cleanly for the client — a close frame (1001, going away) sent
//! between the backend's frames — instead of cutting it.

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use deepseek_http::Drain;

const GOING_AWAY: u16 = 1001;
const REASON: &[u8] = b"router shutting down";

/// Splices the two sides once both upgrades complete.
pub fn spawn(
    client: OnUpgrade,
    backend: OnUpgrade,
    websocket: bool,
    drain: Option<Drain>,
    revision: std::sync::Arc<str>,
) {
    tokio::spawn(async move {
        match tokio::try_join!(client, backend) {
            Ok((client, backend)) => {
                if let Err(e) = splice(client, backend, websocket, drain).await {
                    tracing::debug!(revision = %revision, error = %e, "upgraded connection closed");
                }
            }
            Err(e) => tracing::warn!(revision = %revision, error = %e, "upgrade failed"),
        }
    });
}

async fn splice(
    client: Upgraded,
    backend: Upgraded,
    websocket: bool,
    drain: Option<Drain>,
) -> std::io::Result<()> {
    let (mut c, mut b) = (TokioIo::new(client), TokioIo::new(backend));
    let Some(drain) = drain.filter(|_| websocket) else {
        tokio::io::copy_bidirectional(&mut c, &mut b).await?;
        return Ok(());
    };
    let (mut c_read, mut c_write) = tokio::io::split(c);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let upstream = async {
        tokio::io::copy(&mut c_read, &mut b_write).await?;
        b_write.shutdown().await
    };
    let downstream = async {
        let mut frames = FrameTracker::default();
        let mut buf = vec![0u8; 16 * 1024];
        let closing = drain.closing();
        tokio::pin!(closing);
        let mut closing_fired = false;
        loop {
            if closing_fired && frames.at_boundary() {
                // The backend just sees the connection end: it may be mid-frame from the
                // client, where no frame of ours can go.
                c_write.write_all(&close_frame()).await?;
                return c_write.shutdown().await;
            }
            tokio::select! {
                _ = &mut closing, if !closing_fired => closing_fired = true,
                n = b_read.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return c_write.shutdown().await;
                    }
                    frames.feed(&buf[..n]);
                    c_write.write_all(&buf[..n]).await?;
                }
            }
        }
    };
    // Either direction ending (or the goodbye) ends the tunnel.
    tokio::select! {
        r = upstream => r,
        r = downstream => r,
    }
}

/// A server-to-client close frame (unmasked, RFC 6455 §5.5.1) with status 1001.
fn close_frame() -> Vec<u8> {
    let mut frame = vec![0x88, (2 + REASON.len()) as u8];
    frame.extend_from_slice(&GOING_AWAY.to_be_bytes());
    frame.extend_from_slice(REASON);
    frame
}

/// Follows WebSocket frame headers in one direction to know when the bytes so far end
/// exactly at a frame's end (where a frame of the router's own may go).
#[derive(Default)]
struct FrameTracker {
    header: Vec<u8>,
    payload_left: u64,
}

impl FrameTracker {
    fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.payload_left == 0
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64);
                self.payload_left -= n;
                data = &data[n as usize..];
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some(len) = payload_len(&self.header) {
                self.payload_left = len;
                self.header.clear();
            }
        }
    }
}

/// The payload length once `h` holds a whole frame header.
fn payload_len(h: &[u8]) -> Option<u64> {
    if h.len() < 2 {
        return None;
    }
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    let (ext, len7) = match h[1] & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    if h.len() < 2 + ext + mask {
        return None;
    }
    Some(len7.unwrap_or_else(|| {
        h[2..2 + ext]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_boundaries_are_followed_across_reads_and_length_forms() {
        let mut t = FrameTracker::default();
        t.feed(&[0x81, 3, b'a']);
        assert!(!t.at_boundary());
        t.feed(b"bc");
        assert!(t.at_boundary());
        let mut long = vec![0x82, 126, 0x01, 0x00];
        long.extend(vec![0u8; 256]);
        t.feed(&long[..3]);
        assert!(!t.at_boundary());
        t.feed(&long[3..]);
        assert!(t.at_boundary());
        let mut masked = vec![0x81, 0x82, 1, 2, 3, 4, 9, 9];
        masked.extend([0x89, 0]);
        t.feed(&masked);
        assert!(t.at_boundary());
    }

    #[test]
    fn the_close_frame_carries_1001_and_its_reason() {
        let frame = close_frame();
        assert_eq!(&frame[..4], &[0x88, 22, 0x03, 0xE9]);
        assert_eq!(&frame[4..], REASON);
    }
}
