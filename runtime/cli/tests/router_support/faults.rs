//! Backends that fail on purpose: a black hole (connects never complete), and backends that
//! answer 500s, die mid-stream, or report an in-band error after their 200.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Backend;

/// How a [`faulty_backend`] fails every request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answers 500 with an OpenAI-shaped error.
    Status500,
    /// Starts a 200 SSE stream, sends one event, then drops the connection.
    DiesMidStream,
    /// Starts a 200 SSE stream, then reports an error in-band as the runtime does.
    InBandError,
}

/// A backend failing every request the way `fault` says; counts requests in `hits`.
pub async fn faulty_backend(fault: Fault) -> Backend {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                // One request per connection: read its head (bodies here are empty).
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let sse = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                let event = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
                let reply = match fault {
                    Fault::Status500 => {
                        let body = r#"{"error":{"message":"boom","type":"server_error","param":null,"code":"internal"}}"#;
                        format!("HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                    }
                    Fault::DiesMidStream => format!("{sse}{}", event("data: {\"token\":0}\n\n")),
                    Fault::InBandError => format!(
                        "{sse}{}{}{}0\r\n\r\n",
                        event("data: {\"token\":0}\n\n"),
                        event("data: {\"error\":{\"message\":\"engine stopped\",\"type\":\"server_error\",\"param\":null,\"code\":\"engine_stopped\"}}\n\n"),
                        event("data: [DONE]\n\n"),
                    ),
                };
                let _ = tcp.write_all(reply.as_bytes()).await;
                if matches!(fault, Fault::DiesMidStream) {
                    // Let the first event travel, then reset: the stream is cut, not finished.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = tcp.set_zero_linger();
                }
            });
        }
    });
    Backend {
        name: format!("{fault:?}"),
        url: format!("http://{addr}"),
        hits,
        ready: Arc::new(AtomicBool::new(true)),
    }
}

/// An address that never completes a connection: its listener's accept queue is full, so
/// the kernel drops new SYNs and a connect hangs until its timeout (a black-holed pod).
pub struct BlackHole {
    pub url: String,
    _listener: tokio::net::TcpListener,
    _filler: Vec<std::net::TcpStream>,
}

pub fn black_hole() -> BlackHole {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(0).unwrap();
    let mut filler = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            filler.push(s);
        }
    }
    BlackHole {
        url: format!("http://{addr}"),
        _listener: listener,
        _filler: filler,
    }
}
