//! The API over TLS (`[server.tls]`): rustls with ring (as toward the
//! banks), HTTP/1.1, and a certificate that is reloaded from its files
//! without a restart.
//!
//! The server's certificate comes from [`ReloadingCert`], a rustls
//! certificate resolver holding the current chain and key; [`watch`] reads
//! the files every `reload_interval_s` and swaps them in when their bytes
//! changed and they parse into a usable pair. New handshakes get the new
//! certificate; open connections keep theirs. A file that is missing or
//! broken mid-rotation is logged and counted, and the old certificate stays
//! in use, so a half-written renewal never takes the API down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch as watch_channel;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerTlsConfig;

/// A handshake that takes longer is dropped.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Time to send the request head once connected.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Connections served at once; the accept loop waits above it.
pub const MAX_CONNECTIONS: usize = 4_096;
/// Largest certificate or key file read, in bytes.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why the API's certificate or key could not be used. Never carries key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls: cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("server.tls: {path} holds no usable {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("server.tls: {0}")]
    Config(String),
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |reason: String| TlsError::Read {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_error(e.kind().to_string()))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(read_error(format!(
            "{} bytes; expected a PEM file of at most {MAX_PEM_BYTES}",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| read_error(e.kind().to_string()))
}

/// The chain and key of `cfg` as rustls uses them, and a digest of the
/// files' bytes (to notice a change).
fn load(cfg: &ServerTlsConfig) -> Result<(Arc<CertifiedKey>, [u8; 32]), TlsError> {
    let cert_pem = read_pem(&cfg.cert_file)?;
    let key_pem = read_pem(&cfg.key_file)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cfg.cert_file.clone(),
            what: "certificate",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cfg.cert_file.clone(),
            what: "certificate",
            reason: "no `-----BEGIN CERTIFICATE-----` block".to_owned(),
        });
    }
    // The parser's error names the PEM problem, never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: cfg.key_file.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Pem {
            path: cfg.key_file.clone(),
            what: "private key",
            reason: format!("unsupported key type ({e})"),
        })?;
    let certified = CertifiedKey::new(certs, signing_key);
    // The key must belong to the leaf certificate.
    certified.keys_match().map_err(|e| {
        TlsError::Config(format!(
            "the key in {} does not belong to the first certificate of {} ({e})",
            cfg.key_file.display(),
            cfg.cert_file.display()
        ))
    })?;
    crate::ops::certificate_expiry("api", "server", &String::from_utf8_lossy(&cert_pem));
    let mut digest = Sha256::new();
    digest.update(&cert_pem);
    digest.update(&key_pem);
    Ok((Arc::new(certified), digest.finalize().into()))
}

/// The server certificate currently presented, swapped by [`watch`].
#[derive(Debug)]
pub struct ReloadingCert {
    cfg: ServerTlsConfig,
    current: RwLock<(Arc<CertifiedKey>, [u8; 32])>,
}

impl ReloadingCert {
    /// Loads the files now: a start with an unusable certificate fails,
    /// naming the file.
    pub fn load(cfg: &ServerTlsConfig) -> Result<ReloadingCert, TlsError> {
        Ok(ReloadingCert {
            cfg: cfg.clone(),
            current: RwLock::new(load(cfg)?),
        })
    }

    /// Reads the files again and swaps in their pair when it changed and is
    /// usable. `Ok(true)`: a new certificate is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (key, digest) = load(&self.cfg)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.1 == digest {
            return Ok(false);
        }
        *current = (key, digest);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(current.0.clone())
    }
}

/// The acceptor of the API's TLS connections, presenting `cert`.
pub fn acceptor(cert: Arc<ReloadingCert>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Checks the files every `reload_interval_s` until `stop` turns true.
pub async fn watch(cert: Arc<ReloadingCert>, mut stop: watch_channel::Receiver<bool>) {
    let every = Duration::from_secs(cert.cfg.reload_interval_s.max(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match cert.reload_if_changed() {
            Ok(true) => {
                metrics::counter!("api_tls_reloads_total", "outcome" => "reloaded").increment(1);
                tracing::info!(cert = %cert.cfg.cert_file.display(), "API certificate reloaded");
            }
            Ok(false) => {}
            Err(error) => {
                metrics::counter!("api_tls_reloads_total", "outcome" => "failed").increment(1);
                tracing::warn!(%error, "the API certificate files could not be reloaded; the current certificate stays in use");
            }
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = acceptor.clone();
                    // Handlers see the peer as with plain HTTP (`ConnectInfo`).
                    let service = hyper_util::service::TowerToHyperService::new(
                        router
                            .clone()
                            .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
                            .into_service::<hyper::body::Incoming>(),
                    );
                    let watcher = graceful.watcher();
                    connections.spawn(async move {
                        let handshake = tokio::time::timeout(
                            Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
                            acceptor.accept(tcp),
                        );
                        let tls = match handshake.await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "API TLS handshake refused");
                                metrics::counter!("api_tls_handshake_failures_total").increment(1);
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "API TLS handshake timed out");
                                metrics::counter!("api_tls_handshake_failures_total").increment(1);
                                return;
                            }
                        };
                        let mut builder = hyper::server::conn::http1::Builder::new();
                        builder
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                            .keep_alive(true);
                        let connection = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%peer, %error, "API connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    connections.shutdown().await;
}
