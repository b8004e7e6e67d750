//! Known secrets planted, then looked for everywhere the gateway writes.
//!
//! Planted: a client secret (its keyed hash in the configuration), a
//! person's password (its argon2 hash in the configuration), the person's
//! TOTP secret sealed under a master key given in `BANKDIRECT_MASTER_KEY`,
//! and a private key (the mutual-TLS client key of an iso20022 bank, sealed
//! in its file). The configuration is loaded from a file the way `serve`
//! loads it, so the sealed values are opened by the real path.
//!
//! Exercised: token requests and logins, good and bad (including wrong
//! guesses that contain the real secret), payments, approvals, a webhook,
//! bank calls over mutual TLS, errors. Then searched, for each secret and
//! its base64, base64url and hex forms (and the key's DER): the process's
//! logs at debug level, every audit record (over the API and in the store),
//! every error body seen, the database file and its `-wal` file, and every
//! other file the gateway wrote into its data directory.
//!
//! A bank password (`connections[].password`, sealed too) is planted on
//! the cn-xml bank `east`: the connector sends it in every packet's
//! `PASSWD`, and the recorded exchange must show it removed.

use std::{path::Path, sync::Arc};

use base64::Engine as _;
use crypto::totp::{TotpKey, AUTHENTICATOR};
use domain::{AccountId, AccountNumber, BankId, ClientId, ConnectionId, UserId};
use gateway::{
    auth::Scope,
    config::{
        AccountConfig, ApprovalRuleConfig, AuthConfig, BankConfig, BankLimits, BankQuirks,
        ClientConfig, Role, UserConfig,
    },
};
use serde_json::json;

use crate::helpers::{capture_logs, connection, error_bodies, split, user, Options, TestApp};

const PASSWORD: &str = "Planted-Pa55word-owasp-3f9c1e";
const TOTP_SECRET: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
const BANK_PASSWORD: &str = "Planted-BankPw-owasp-71c2";

/// The text forms a secret may leak in.
fn forms(name: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        (name.to_owned(), raw.to_vec()),
        (
            format!("{name} (base64)"),
            b64.encode(raw).trim_end_matches('=').as_bytes().to_vec(),
        ),
        (
            format!("{name} (base64url)"),
            b64url.encode(raw).into_bytes(),
        ),
        (format!("{name} (hex)"), hex.clone().into_bytes()),
        (format!("{name} (HEX)"), hex.to_uppercase().into_bytes()),
    ];
    out.retain(|(_, v)| v.len() >= 8);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until at least 5 s remain in the current TOTP step; its code.
async fn totp_code(app: &TestApp) -> String {
    loop {
        let now_ms = app.state.clock.now().timestamp_millis();
        let step_ms = i64::try_from(AUTHENTICATOR.step_s).unwrap() * 1000;
        let left_ms = step_ms - now_ms.rem_euclid(step_ms);
        if left_ms >= 5000 {
            let step = u64::try_from(now_ms / step_ms).unwrap();
            return TotpKey::from_base32(TOTP_SECRET)
                .unwrap()
                .code(step, AUTHENTICATOR);
        }
        tokio::time::sleep(std::time::Duration::from_millis(
            u64::try_from(left_ms).unwrap() + 100,
        ))
        .await;
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn secrets_planted_are_in_no_log_audit_record_error_body_or_database_file() {
    let logs = capture_logs();
    tracing::info!("owasp secrets test: log capture on");

    let master = crypto::sealed::MasterKey::generate();
    let master_b64 = master.to_base64().expose_secret().to_owned();
    let client_secret = crypto::generate_client_secret().expose_secret().to_owned();
    let iso = banksim::SimServer::start(
        banksim::SimBankConfig::iso20022_demo("iso", 41),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let pki = iso.pki().expect("an iso20022 simulator has a PKI").clone();
    let private_key_pem = pki.client_key_pem.expose_secret().to_owned();
    let sealed_totp = master.seal(TOTP_SECRET);
    let sealed_key = master.seal(&private_key_pem);
    let sealed_bank_password = master.seal(BANK_PASSWORD);
    let iso_url = iso.url();
    let iso_accounts = iso.ledger().accounts();

    let configure = {
        let client_secret = client_secret.clone();
        move |c: &mut gateway::config::Config| {
            let hasher = crypto::KeyedHasher::load_or_create(
                &c.data_dir.join(AuthConfig::default().secret_hash_key_file),
            )
            .unwrap();
            c.clients.push(ClientConfig {
                id: ClientId::parse("planted").unwrap(),
                secret_hash: hasher.hash(&client_secret),
                scopes: Scope::ALL.to_vec(),
                accounts: vec!["*".to_owned()],
            });
            c.users.push(UserConfig {
                id: UserId::parse("planted-person").unwrap(),
                name: "Planted Person".to_owned(),
                roles: vec![Role::Maker, Role::Approver],
                accounts: vec!["*".to_owned()],
                password_hash: Some(crypto::password::hash_password(PASSWORD).unwrap()),
                totp_secret: Some(crypto::SecretString::new(sealed_totp.clone())),
            });
            // The bank password of east, sealed.
            let east = c
                .connections
                .iter()
                .position(|x| x.id.as_str() == "east-main")
                .unwrap();
            let mut entry = serde_json::to_value(&c.connections[east]).unwrap();
            entry["password"] = json!(sealed_bank_password);
            c.connections[east] = serde_json::from_value(entry).unwrap();
            // The iso20022 bank over mutual TLS, its client key sealed.
            let dir = c.data_dir.join("iso-pki");
            std::fs::create_dir_all(&dir).unwrap();
            let write = |name: &str, text: &str| {
                let p = dir.join(name);
                std::fs::write(&p, text).unwrap();
                p
            };
            let tls = json!({
                "ca_cert": write("ca.pem", &pki.ca_cert_pem),
                "client_cert": write("client.pem", &pki.client_cert_pem),
                "client_key": write("client-key.sealed", &sealed_key),
            });
            let bank = BankId::parse("iso").unwrap();
            let conn = ConnectionId::parse("iso-main").unwrap();
            c.banks.push(BankConfig {
                id: bank.clone(),
                iso20022: None,
                name: "iso bank".to_owned(),
                family: banks::Family::Iso20022,
                time_zone: domain::BankTimeZone::parse("Europe/Berlin").unwrap(),
                limits: BankLimits {
                    request_timeout_ms: 5_000,
                    connect_timeout_ms: 1_000,
                    ..BankLimits::default()
                },
                quirks: BankQuirks::default(),
            });
            c.connections.push(connection(
                &conn,
                &bank,
                &iso_url,
                "PARTNER01",
                json!({ "tls": tls }),
            ));
            for (i, a) in iso_accounts.iter().enumerate() {
                c.accounts.push(AccountConfig {
                    id: AccountId::parse(&format!("iso-{}", i + 1)).unwrap(),
                    connection: conn.clone(),
                    number: AccountNumber::parse(&a.number).unwrap(),
                    name: a.name.clone(),
                    currencies: vec![a.currency],
                });
            }
        }
    };
    let app = TestApp::spawn_with(Options {
        users: vec![user("checker", &[Role::Approver])],
        approval_rules: vec![ApprovalRuleConfig {
            debtor_account: "*".to_owned(),
            currency: domain::Currency::CNY,
            above: "100.00".to_owned(),
            approvers: 1,
        }],
        configure: Some(Arc::new(configure)),
        load_from_file_with_env: Some(vec![(
            crypto::sealed::MASTER_KEY_ENV.to_owned(),
            master_b64.clone(),
        )]),
    })
    .await;
    // The sealed values were opened by loading: the key is usable, and
    // the TOTP secret is in effect.
    let loaded = app
        .config
        .users
        .iter()
        .find(|u| u.id.as_str() == "planted-person")
        .unwrap();
    assert_eq!(
        loaded.totp_secret.as_ref().unwrap().expose_secret(),
        TOTP_SECRET
    );

    let mut seen: Vec<String> = Vec::new();
    let token_request = |form: Vec<(&'static str, String)>, basic: Option<(String, String)>| {
        let app = &app;
        async move {
            let mut req = app.http.post(app.url("/oauth/token")).form(&form);
            if let Some((id, secret)) = basic {
                req = req.basic_auth(id, Some(secret));
            }
            split(req.send().await.unwrap()).await
        }
    };
    // Client credentials: right, wrong, the right one with a byte more,
    // in the body, for an unknown client.
    let cc = || vec![("grant_type", "client_credentials".to_owned())];
    let (s, good) = token_request(cc(), Some(("planted".into(), client_secret.clone()))).await;
    assert_eq!(s, 200, "{good}");
    let planted = good["access_token"].as_str().unwrap().to_owned();
    for (id, secret) in [
        ("planted", format!("{client_secret}x")),
        (
            "planted",
            client_secret[..client_secret.len() - 1].to_owned(),
        ),
        ("nobody", client_secret.clone()),
    ] {
        let (s, v) = token_request(cc(), Some((id.to_owned(), secret))).await;
        assert_eq!(s, 401, "{v}");
        seen.push(v.to_string());
    }
    let mut in_body = cc();
    in_body.push(("client_id", "planted".to_owned()));
    in_body.push(("client_secret", format!("{client_secret}!")));
    let (s, v) = token_request(in_body, None).await;
    assert_eq!(s, 401, "{v}");
    seen.push(v.to_string());

    // Logins: right, wrong password, password with a byte more, missing
    // and wrong code, unknown user with the real password.
    let login = |user: &'static str, password: String, totp: Option<String>| {
        let mut form = vec![("grant_type", "password"), ("username", user)]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect::<Vec<_>>();
        form.push(("password", password));
        if let Some(t) = totp {
            form.push(("totp", t));
        }
        token_request(form, None)
    };
    for (user, password, totp) in [
        (
            "planted-person",
            format!("{PASSWORD}1"),
            Some("000000".to_owned()),
        ),
        ("planted-person", PASSWORD.to_owned(), None),
        (
            "planted-person",
            PASSWORD.to_owned(),
            Some("12345".to_owned()),
        ),
        ("somebody", PASSWORD.to_owned(), None),
    ] {
        let (s, v) = login(user, password, totp).await;
        assert_eq!(s, 401, "{v}");
        seen.push(v.to_string());
    }
    let code = totp_code(&app).await;
    let (s, v) = login("planted-person", PASSWORD.to_owned(), Some(code)).await;
    assert_eq!(s, 200, "{v}");
    let person = v["access_token"].as_str().unwrap().to_owned();

    // Money: a payment that needs approval, approved, sent, settled; a
    // webhook; bank calls over mutual TLS with the sealed key.
    let p = app.pay(&person, "east-1", "500.00").await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let (s, v) = app
        .post(&format!("/v1/payments/{pid}/approve"), &person, &json!({}))
        .await;
    assert_eq!(s, 403, "own payment: {v}");
    seen.push(v.to_string());
    let checker = app.login("checker").await;
    let (s, v) = app
        .post(
            &format!("/v1/payments/{pid}/approve"),
            &checker,
            &json!({"comment": "ok"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    app.drive_to(&planted, &pid, &["settled"]).await;
    // The bank password went out, and its exchange shows it removed.
    let exchanges = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            action: Some("bank.exchange".to_owned()),
            object: Some(format!("payment:{pid}")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let exchange_id = exchanges[0].details["exchange_id"].as_i64().unwrap();
    let auditor = app.token_for(&app.auditor, None).await;
    let (s, exchange) = app
        .get(&format!("/v1/bank-exchanges/{exchange_id}"), &auditor)
        .await;
    assert_eq!(s, 200, "{exchange}");
    assert!(
        exchange["request"]["text"]
            .as_str()
            .unwrap()
            .contains("<PASSWD>[removed]</PASSWD>"),
        "the password was sent and masked: {exchange}"
    );
    let (s, v) = app
        .post(
            "/v1/webhooks",
            &planted,
            &json!({"url": "https://hooks.example.com/p", "event_types": ["payment.status_changed"]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .post("/v1/accounts/iso-1/balance:refresh", &planted, &json!({}))
        .await;
    assert_eq!(s, 200, "the sealed key opens mutual TLS: {v}");
    let (s, v) = app
        .post(
            "/v1/accounts/iso-1/transactions:refresh",
            &planted,
            &json!({}),
        )
        .await;
    assert!(s < 500, "{v}");
    // Errors of several kinds.
    for (path, token) in [
        ("/v1/payments/pay_01ARZ3NDEKTSV4RRFFQ69G5FAV", &planted),
        ("/v1/accounts/nowhere", &planted),
        ("/v1/audit", &person),
        ("/v1/payments", &format!("{client_secret}.{PASSWORD}.x")),
    ] {
        let (s, v) = app.get(path, token).await;
        assert!(s >= 400, "{path}: {v}");
        seen.push(v.to_string());
    }
    // What the gateway wrote.
    let mut audit_api = String::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=500&cursor={c}"),
            None => "/v1/audit?limit=500".to_owned(),
        };
        let (s, page) = app.get(&path, &auditor).await;
        assert_eq!(s, 200, "{page}");
        audit_api.push_str(&page.to_string());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let stored = app
        .state
        .store
        .list_audit(&store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(stored.len() >= 10, "the run was audited: {}", stored.len());
    let audit_store: String = stored
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}\n",
                r.actor, r.action, r.object, r.outcome, r.details
            )
        })
        .collect();
    let db_path = std::path::PathBuf::from(app.config.database_url());
    let wal_path = db_path.with_file_name(format!(
        "{}-wal",
        db_path.file_name().unwrap().to_str().unwrap()
    ));
    let db_bytes = std::fs::read(&db_path).unwrap();
    let wal_bytes = std::fs::read(&wal_path).expect("the -wal file exists while the gateway runs");
    assert!(
        !wal_bytes.is_empty(),
        "the -wal file holds the recent writes"
    );
    assert!(
        find(&db_bytes, b"planted-person") || find(&wal_bytes, b"planted-person"),
        "the search reads the real database: the person's id is in it"
    );
    let data_dir = app.data_dir.path().to_path_buf();
    let log_text_running = logs.text();

    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    secrets.extend(forms("client secret", client_secret.as_bytes()));
    secrets.extend(forms("bank password", BANK_PASSWORD.as_bytes()));
    secrets.extend(forms("password", PASSWORD.as_bytes()));
    secrets.extend(forms("TOTP secret", TOTP_SECRET.as_bytes()));
    secrets.extend(forms("TOTP key bytes", &base32_decode(TOTP_SECRET)));
    let master_raw = base64::engine::general_purpose::STANDARD
        .decode(&master_b64)
        .unwrap();
    secrets.extend(forms("master key", &master_raw));
    secrets.push((
        "master key (as given)".into(),
        master_b64.clone().into_bytes(),
    ));
    let der = pem_der(&private_key_pem);
    secrets.extend(forms("private key DER", &der));
    // The P-256 scalar: PKCS#8 wraps an ECPrivateKey (version 1, OCTET
    // STRING of 32).
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an EC private key");
    secrets.extend(forms("private key scalar", &der[at + 5..at + 37]));

    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("logs".into(), log_text_running.into_bytes()),
        ("audit over the API".into(), audit_api.into_bytes()),
        ("audit in the store".into(), audit_store.into_bytes()),
        (
            "error bodies of this test".into(),
            seen.join("\n").into_bytes(),
        ),
        ("the database file".into(), db_bytes),
        ("the -wal file".into(), wal_bytes),
    ];
    for (i, body) in error_bodies().into_iter().enumerate() {
        places.push((format!("error body #{i}"), body.into_bytes()));
    }
    collect_files(&data_dir, &mut places);
    app.stop().await;
    iso.shutdown().await;
    // After shutdown (checkpointed) and the logs of the shutdown too.
    places.push(("logs after stop".into(), logs.text().into_bytes()));
    if let Ok(bytes) = std::fs::read(&db_path) {
        places.push(("the database file after stop".into(), bytes));
    }
    if let Ok(bytes) = std::fs::read(&wal_path) {
        places.push(("the -wal file after stop".into(), bytes));
    }
    assert!(
        places[0].1.len() > 10_000 && find(&places[0].1, b"DEBUG"),
        "the log capture is on at debug level"
    );

    let mut found = Vec::new();
    for (place, bytes) in &places {
        for (name, secret) in &secrets {
            if find(bytes, secret) {
                found.push(format!("{name} in {place}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets found: {found:#?}");
}

/// Every file under `dir`: the data directory, with the configuration file
/// (hashes and sealed values only) and the sealed key file.
fn collect_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push((format!("file {}", path.display()), bytes));
            }
        }
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
