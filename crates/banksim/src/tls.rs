//! HTTPS with mutual TLS for the iso20022 family: a rustls server config
//! that requires a client certificate issued by the bank's CA, and an
//! accept loop serving the axum router over tokio-rustls and hyper.
//!
//! rustls runs on the `ring` provider, chosen explicitly
//! (`builder_with_provider`), the same provider reqwest's rustls uses, so
//! the workspace builds one crypto backend. Only HTTP/1.1 is offered
//! (ALPN), like the cn-xml front machines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{Pki, SimBankConfig, SimError, SimState};

/// Longest a client may take for its TLS handshake, in milliseconds.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Longest a client may take to send a request's headers, in milliseconds.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Most connections served at once; further ones wait in the backlog.
pub const MAX_CONNECTIONS: usize = 1_024;

fn tls_error(what: &str) -> impl FnOnce(String) -> SimError + '_ {
    move |message| SimError::InvalidConfig {
        message: format!("pki: {what}: {message}"),
    }
}

/// A fresh PKI for the bank: server names `localhost`, `127.0.0.1` and the
/// bound IP, client common name the bank's login.
pub(crate) fn generate_pki(cfg: &SimBankConfig, local: SocketAddr) -> Result<Pki, SimError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ip = local.ip().to_string();
    if !names.contains(&ip) && !local.ip().is_unspecified() {
        names.push(ip);
    }
    Pki::generate(&names, &cfg.login).map_err(|e| tls_error("generate")(e.to_string()))
}

/// The acceptor: the PKI's server certificate, client certificates
/// verified against the PKI's CA and required.
pub(crate) fn acceptor(pki: &Pki) -> Result<TlsAcceptor, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
        let cert = cert.map_err(|e| tls_error("CA certificate")(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| tls_error("CA certificate")(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls_error("client verifier")(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("server certificate")(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.expose_secret().as_bytes())
        .map_err(|e| tls_error("server key")(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls_error("server certificate")(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the server stops, then lets in-flight
/// requests finish (the caller bounds how long). Dropping this future
/// aborts every connection it spawned.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    state: Arc<SimState>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = acceptor.clone();
                    let service = hyper_util::service::TowerToHyperService::new(app.clone());
                    let watcher = graceful.watcher();
                    let bank = state.cfg.bank_id.clone();
                    connections.spawn(async move {
                        let handshake = tokio::time::timeout(
                            Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
                            acceptor.accept(tcp),
                        );
                        let tls = match handshake.await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::info!(bank = %bank, %peer, %error, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(bank = %bank, %peer, "TLS handshake timed out");
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
                            tracing::debug!(bank = %bank, %peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(bank = %state.cfg.bank_id, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = state.stopped() => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    connections.shutdown().await;
}
