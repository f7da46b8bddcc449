//! TLS through rustls: TLS 1.2 and 1.3 only (rustls implements nothing older, and the protocol
//! list says so explicitly), the certificate and key read from files (a mounted Secret) and
//! swapped when they change. A swap only affects handshakes from then on: open connections keep
//! the session they negotiated, so a rotation drops no stream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{version, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::metrics::SecurityMetrics;
use crate::watch::Reloading;

/// Reads a certificate chain and its private key, checking that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("unusable private key {}", key.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .with_context(|| format!("{} does not match {}", key.display(), cert.display()))?;
    Ok(ck)
}

/// Serves whatever certificate the files hold now.
struct ReloadingCert(Arc<Reloading<CertifiedKey>>);

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadingCert")
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// The acceptor for `--tls-cert`/`--tls-key`; fails at startup on unreadable or mismatched
/// files, later changes are picked up while serving.
pub fn acceptor(
    cert: PathBuf,
    key: PathBuf,
    metrics: Arc<SecurityMetrics>,
) -> anyhow::Result<TlsAcceptor> {
    let files = vec![cert.clone(), key.clone()];
    let loaded_once = AtomicBool::new(false);
    let certs = Reloading::watch("tls certificate", files, move || {
        let ck = load_certified_key(&cert, &key)?;
        if loaded_once.swap(true, Ordering::Relaxed) {
            metrics.tls_reloads.inc();
        }
        Ok(ck)
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ReloadingCert(certs)));
    // axum serves HTTP/1.1 here (its `http2` feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connection handshake of `deepseek_http::serve_with_handshake` for this acceptor: the
/// TLS session is what HTTP is spoken on. The serve loop bounds how long it may take.
pub fn handshake(acceptor: TlsAcceptor) -> deepseek_http::Handshake {
    Arc::new(move |tcp: TcpStream| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            let tls = acceptor.accept(tcp).await?;
            Ok(Box::new(tls) as deepseek_http::BoxedIo)
        })
    })
}
