//! OWASP API7:2023 Server Side Request Forgery.
//!
//! The one URL a caller gives the gateway is a webhook's. Loopback, private,
//! link-local (the cloud metadata address 169.254.169.254), CGNAT,
//! multicast, unspecified and unique-local addresses, in every spelling
//! (decimal, hex, short IPv4, IPv6, IPv4-mapped, NAT64, `localhost` with a
//! trailing dot or as a parent domain) are refused at registration (422
//! `url_not_allowed`); a name that only resolves to loopback passes
//! registration and is refused at delivery with nothing sent; an operator's
//! allow-list lets exactly what it names through; redirects are not
//! followed.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use axum::{http::StatusCode, response::IntoResponse, routing::post, Router};
use serde_json::{json, Value};

use crate::helpers::{payment_body, Options, TestApp};

/// A receiver on loopback counting what reaches it; answers `answer`.
async fn receiver(answer: fn() -> axum::response::Response) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                answer()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, hits)
}

fn ok() -> axum::response::Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn register(app: &TestApp, token: &str, url: &str) -> (u16, Value) {
    app.post(
        "/v1/webhooks",
        token,
        &json!({"url": url, "event_types": ["payment.status_changed"]}),
    )
    .await
}

#[tokio::test]
async fn api7_internal_addresses_in_every_spelling_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let refused = [
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://0.0.0.0/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/computeMetadata/v1/",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://[::1]/hook",
        "http://[::]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[ff02::1]/hook",
    ];
    for url in refused {
        let (s, v) = register(&app, &erp, url).await;
        assert_eq!(
            (s, v["code"].as_str(), v["field"].as_str()),
            (422, Some("url_not_allowed"), Some("body.url")),
            "{url}: {v}"
        );
    }
    // Other schemes and smuggled credentials are refused too.
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "ftp://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
    ] {
        let (s, v) = register(&app, &erp, url).await;
        assert_eq!(s, 422, "{url}: {v}");
    }
    let (_, list) = app.get("/v1/webhooks", &erp).await;
    assert_eq!(list["items"], json!([]), "nothing stored");
    // A public address is fine (the control).
    let (s, v) = register(&app, &erp, "https://hooks.example.com/hook").await;
    assert_eq!(s, 201, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn api7_a_name_resolving_to_loopback_is_refused_when_resolved() {
    use gateway::webhook_delivery::CheckedResolver;
    let strict = gateway::config::WebhooksConfig::default();
    let refused = CheckedResolver::new(&strict)
        .resolve_checked("localhost")
        .await
        .expect_err("localhost resolves to loopback");
    assert!(
        refused
            .to_string()
            .starts_with("not sent: localhost is or resolves to"),
        "{refused}"
    );
    let allowing = gateway::config::WebhooksConfig {
        allowed_hosts: vec!["localhost".to_owned()],
        ..gateway::config::WebhooksConfig::default()
    };
    assert!(CheckedResolver::new(&allowing)
        .resolve_checked("localhost")
        .await
        .is_ok());

    // End to end with this machine's own name when it resolves to loopback
    // (as it does in containers): registration cannot resolve, delivery does.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let loops = !host.is_empty()
        && tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map(|mut a| a.all(|a| a.ip().is_loopback()))
            .unwrap_or(false);
    if !loops {
        eprintln!(
            "api7: {host:?} does not resolve to loopback; the resolver check above stands alone"
        );
        return;
    }
    let app = TestApp::spawn().await;
    let erp = app.token_for(&app.erp, None).await;
    let (port, hits) = receiver(ok).await;
    let (s, hook) = register(&app, &erp, &format!("http://{host}:{port}/hook")).await;
    assert_eq!(s, 201, "a name is not resolved at registration: {hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    app.pay(&erp, "east-1", "1.50").await;
    app.state.webhooks.fan_out_round().await.unwrap();
    assert!(app.state.webhooks.deliver_round().await.unwrap() >= 1);
    let (_, deliveries) = app
        .get(&format!("/v1/webhooks/{hook_id}/deliveries"), &erp)
        .await;
    let text = deliveries.to_string();
    assert!(text.contains("not sent:"), "{deliveries}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached loopback");
    app.stop().await;
}

#[tokio::test]
async fn api7_the_allow_list_lets_exactly_what_it_names_and_redirects_are_not_followed() {
    let app = TestApp::spawn_with(Options {
        configure: Some(Arc::new(|c: &mut gateway::config::Config| {
            c.webhooks.allowed_hosts = vec!["127.0.0.1".to_owned()];
            c.webhooks.backoff_base_ms = 10;
            c.webhooks.backoff_max_ms = 20;
        })),
        ..Options::default()
    })
    .await;
    let erp = app.token_for(&app.erp, None).await;
    // Allowed: the listed address. Still refused: its neighbours.
    let (target_port, target_hits) = receiver(ok).await;
    let (s, v) = register(&app, &erp, &format!("http://127.0.0.1:{target_port}/hook")).await;
    assert_eq!(s, 201, "{v}");
    for url in [
        "http://127.0.0.2/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/",
    ] {
        let (s, v) = register(&app, &erp, url).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (422, Some("url_not_allowed")),
            "{url}: {v}"
        );
    }
    // A receiver that redirects the delivery elsewhere.
    fn redirect() -> axum::response::Response {
        let target = REDIRECT_TARGET.get().unwrap();
        (StatusCode::FOUND, [("location", target.as_str())]).into_response()
    }
    static REDIRECT_TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (redirect_port, redirect_hits) = receiver(redirect).await;
    let (second_port, second_hits) = receiver(ok).await;
    REDIRECT_TARGET
        .set(format!("http://127.0.0.1:{second_port}/stolen"))
        .unwrap();
    let (s, v) = register(
        &app,
        &erp,
        &format!("http://127.0.0.1:{redirect_port}/hook"),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = app
        .post("/v1/payments", &erp, &payment_body("east-1", "2.50"))
        .await;
    assert_eq!(s, 201, "{v}");
    let started = std::time::Instant::now();
    while target_hits.load(Ordering::SeqCst) == 0 || redirect_hits.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never delivered"
        );
        app.state.webhooks.fan_out_round().await.unwrap();
        app.state.webhooks.deliver_round().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        app.state.webhooks.deliver_round().await.unwrap();
    }
    assert_eq!(
        second_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
    app.stop().await;
}
