//! Active readiness probes (off unless `--probe-interval-ms` is set): every interval, GET the
//! probe path on every backend of the current routes; a 2xx within the connect timeout marks
//! it ready, anything else takes it out of rotation (and out of the router's readiness) until
//! a later probe passes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::health::Health;
use super::reload::Routes;

pub async fn run(routes: Arc<Routes>, health: Arc<Health>, path: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(table) = routes.current() else {
            continue;
        };
        let mut probes = Vec::new();
        for revision in &table.config.revisions {
            for backend in &revision.backends {
                let (table, health, backend) = (table.clone(), health.clone(), backend.clone());
                let uri = format!("{}{}", backend.to_string().trim_end_matches('/'), path);
                probes.push(tokio::spawn(async move {
                    let ready = probe(&table.client, &uri, table.config.connect_timeout).await;
                    health.set_probe(&backend, ready);
                }));
            }
        }
        for p in probes {
            let _ = p.await;
        }
    }
}

async fn probe(client: &super::table::HttpClient, uri: &str, within: Duration) -> bool {
    let Ok(req) = http::Request::get(uri).body(Full::new(Bytes::new())) else {
        return false;
    };
    matches!(
        tokio::time::timeout(within, client.request(req)).await,
        Ok(Ok(resp)) if resp.status().is_success()
    )
}
