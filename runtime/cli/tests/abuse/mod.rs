//! Abusive clients for the connection-limit tests, the same against `serve` and `route`:
//! slowloris (a request head one header every 500 ms), idle connections that never send a
//! byte, and a flood of 4 MiB bodies; and a normal client whose latency the tests watch.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const FLOOD_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `n` slowloris clients; each task ends with how long the server let it trickle.
pub async fn slowloris(addr: SocketAddr, n: usize) -> Vec<JoinHandle<Duration>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            let head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n";
            if tcp.write_all(head).await.is_err() {
                return started.elapsed();
            }
            let mut buf = [0u8; 1024];
            for i in 0..240 {
                tokio::select! {
                    r = tcp.read(&mut buf) => {
                        // Closed (or answered and closed): the server gave up on us.
                        if matches!(r, Ok(0) | Err(_)) { return started.elapsed(); }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        let line = format!("x-slow-{i}: 1\r\n");
                        if tcp.write_all(line.as_bytes()).await.is_err() {
                            return started.elapsed();
                        }
                    }
                }
            }
            started.elapsed()
        }));
    }
    clients
}

/// `n` connections that never send a byte; each task ends with how long it stayed open.
pub async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<JoinHandle<Duration>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        conns.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(120), async {
                while !matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)) {}
            })
            .await;
            started.elapsed()
        }));
    }
    conns
}

/// Posts 4 MiB bodies to `url` from `workers` tasks until `stop`; counts the answers by
/// class (`[2xx, 4xx, 5xx, transport errors]`).
pub struct Flood {
    pub stop: Arc<AtomicBool>,
    pub counts: Arc<[AtomicUsize; 4]>,
    tasks: Vec<JoinHandle<()>>,
}

pub fn flood(url: &str, workers: usize) -> Flood {
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let body = bytes::Bytes::from(vec![b'a'; FLOOD_BODY_BYTES]);
    let tasks = (0..workers)
        .map(|_| {
            let (stop, counts, body, url) =
                (stop.clone(), counts.clone(), body.clone(), url.to_string());
            tokio::spawn(async move {
                let http = deepseek_test_support::http_client();
                while !stop.load(Ordering::SeqCst) {
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let slot = match r {
                        Ok(resp) => {
                            let s = resp.status().as_u16();
                            let _ = resp.bytes().await;
                            match s {
                                200..=299 => 0,
                                400..=499 => 1,
                                _ => 2,
                            }
                        }
                        Err(_) => 3,
                    };
                    counts[slot].fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    Flood {
        stop,
        counts,
        tasks,
    }
}

impl Flood {
    /// Stops the flood; the answer counts.
    pub async fn finish(self) -> [usize; 4] {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        std::array::from_fn(|i| self.counts[i].load(Ordering::SeqCst))
    }
}

/// Median of `samples`.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Resident memory of a process in MiB (Linux).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// How many of `tasks` ended (their connection was closed by the server) within `within`.
pub async fn closed_within(
    tasks: Vec<JoinHandle<Duration>>,
    within: Duration,
) -> (usize, Duration) {
    let mut closed = 0;
    let mut longest = Duration::ZERO;
    for t in tasks {
        let lived = t.await.unwrap();
        longest = longest.max(lived);
        closed += usize::from(lived <= within);
    }
    (closed, longest)
}
