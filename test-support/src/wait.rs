//! Polling: until a URL answers, until it answers 2xx, or until any condition holds.

use std::future::Future;
use std::time::{Duration, Instant};

/// A client for local test servers (no proxy; a connect timeout so a dead port fails fast).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// Polls `poll` every `every` until it gives `Some`, or `None` once `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, every: Duration, mut poll: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = poll().await {
            return Some(v);
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until `url` answers at all (any status); panics after `within`.
pub async fn wait_for_http(url: &str, within: Duration) {
    let http = http_client();
    let up = eventually(within, Duration::from_millis(20), || async {
        http.get(url).send().await.ok().map(|_| ())
    })
    .await;
    assert!(up.is_some(), "{url} never answered within {within:?}");
}

/// Waits until `url` answers 2xx (a `/readyz`: model loaded and warmed up); panics after
/// `within`.
pub async fn wait_for_http_ready(url: &str, within: Duration) {
    let http = http_client();
    let ready = eventually(within, Duration::from_millis(100), || async {
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(
        ready.is_some(),
        "{url} never became ready within {within:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_gives_the_first_some_and_none_once_time_is_up() {
        let mut calls = 0;
        let got = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, Some(3));
        let never: Option<()> = eventually(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { None },
        )
        .await;
        assert_eq!(never, None);
    }
}
