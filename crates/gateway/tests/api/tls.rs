//! The API over TLS (`[server.tls]`): served with the configured
//! certificate, refused in plain HTTP, and a new certificate written over
//! the files is picked up without a restart, while a broken one mid-rotation
//! leaves the current certificate in use.

use std::time::{Duration, Instant};

use gateway::config::ServerTlsConfig;

use crate::helpers::{Options, TestApp};

fn pki() -> crypto::pki::Pki {
    crypto::pki::Pki::generate(
        &["localhost".to_owned(), "127.0.0.1".to_owned()],
        "tls-test-client",
    )
    .unwrap()
}

/// A client that trusts only `ca_pem`.
fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        // A new connection per request: each one sees the certificate in use now.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn healthz(client: &reqwest::Client, base: &str) -> Result<u16, reqwest::Error> {
    Ok(client
        .get(format!("{base}/healthz"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn the_api_speaks_tls_and_takes_a_new_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki();
    let files = first.write_to_dir(dir.path()).unwrap();
    let tls = ServerTlsConfig {
        cert_file: files.server_cert.clone(),
        key_file: files.server_key.clone(),
        reload_interval_s: 1,
    };
    let app = TestApp::spawn_with(Options {
        tls: Some((tls, first.ca_cert_pem.clone())),
        ..Options::default()
    })
    .await;
    assert!(app.base_url.starts_with("https://"), "{}", app.base_url);
    // The whole API works over it: a token, then an authenticated read.
    let token = app.token_for(&app.erp, None).await;
    let (s, banks) = app.get("/v1/banks", &token).await;
    assert_eq!(s, 200, "{banks}");

    // The certificate's end is a metric, for alerts before it comes.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tls_certificate_not_after_seconds") && l.contains("kind=\"api\""))
        .unwrap_or_else(|| panic!("no api certificate metric in {metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let days_left = (value - chrono::Utc::now().timestamp() as f64) / 86_400.0;
    assert!(
        (700.0..=731.0).contains(&days_left),
        "{line}: {days_left} days"
    );

    // Plain HTTP to the TLS port gets no answer.
    let plain = app.base_url.replacen("https://", "http://", 1);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    assert!(http.get(format!("{plain}/healthz")).send().await.is_err());
    // A client that does not trust the CA refuses the server.
    let stranger = pki();
    assert!(
        healthz(&client_trusting(&stranger.ca_cert_pem), &app.base_url)
            .await
            .is_err()
    );

    // Rotation: a certificate of another CA written over the files.
    let second = pki();
    std::fs::write(&files.server_cert, &second.server_cert_pem).unwrap();
    std::fs::write(&files.server_key, second.server_key_pem.expose_secret()).unwrap();
    let new_ca = client_trusting(&second.ca_cert_pem);
    let started = Instant::now();
    while healthz(&new_ca, &app.base_url).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthz(&client_trusting(&first.ca_cert_pem), &app.base_url)
        .await
        .is_err());

    // A half-written renewal: the current certificate stays in use.
    std::fs::write(&files.server_cert, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(healthz(&new_ca, &app.base_url).await.unwrap(), 200);
    app.stop().await;
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_refused_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = pki().write_to_dir(dir.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_files = pki().write_to_dir(other.path()).unwrap();
    let error = gateway::tls::ReloadingCert::load(&ServerTlsConfig {
        cert_file: files.server_cert.clone(),
        key_file: other_files.server_key.clone(),
        reload_interval_s: 30,
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("does not belong"), "{error}");
    assert!(
        error.contains(&other_files.server_key.display().to_string()),
        "{error}"
    );
    let missing = gateway::tls::ReloadingCert::load(&ServerTlsConfig {
        cert_file: dir.path().join("nope.pem"),
        key_file: files.server_key,
        reload_interval_s: 30,
    })
    .unwrap_err()
    .to_string();
    assert!(missing.contains("nope.pem"), "{missing}");
    assert!(!missing.contains("PRIVATE KEY"), "{missing}");
}
