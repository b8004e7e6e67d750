//! The real `bankdirect` binary, started as a process: `demo` answers with
//! the simulators' totals; the config it writes runs under `sim` + `serve`;
//! every command's `--help` explains itself with an example.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    Running(
        Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

fn wait_for_file(path: &Path, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if serde_json::from_str::<Value>(&text).is_ok() {
                return text;
            }
        }
        assert!(
            start.elapsed() < within,
            "{} did not appear within {within:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token(http: &reqwest::blocking::Client, base: &str, id: &str, secret: &str) -> String {
    let resp = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls /v1/balances until every configured account has a snapshot.
fn balances_when_complete(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    accounts: usize,
    within: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let resp = http
            .get(format!("{base}/v1/balances"))
            .bearer_auth(token)
            .send();
        if let Ok(resp) = resp {
            if resp.status() == 200 {
                let body: Value = resp.json().unwrap();
                if body["items"].as_array().map(Vec::len) == Some(accounts) {
                    return body;
                }
            }
        }
        assert!(
            start.elapsed() < within,
            "balances incomplete after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn totals(list: &Value) -> BTreeMap<String, (String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap().to_owned(),
                (
                    t["booked"].as_str().unwrap().to_owned(),
                    t["available"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Sums the simulators' own ledgers, read over their control API.
fn ledger_totals(
    http: &reqwest::blocking::Client,
    sims: &[Value],
) -> (BTreeMap<String, (i128, i128)>, usize) {
    let mut sums: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    let mut accounts = 0;
    for s in sims {
        // A bank that speaks mutual TLS is asked with the demo's client
        // certificate, as demo.json names it.
        let tls_client;
        let client = if s["tls"].is_object() {
            let read = |key: &str| std::fs::read(s["tls"][key].as_str().unwrap()).unwrap();
            let mut identity = read("client_cert");
            identity.extend(read("client_key"));
            tls_client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&read("ca_cert")).unwrap())
                .identity(reqwest::Identity::from_pem(&identity).unwrap())
                .build()
                .unwrap();
            &tls_client
        } else {
            http
        };
        let ledger: Value = client
            .get(format!("{}_sim/ledger", s["url"].as_str().unwrap()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        for a in ledger["accounts"].as_array().unwrap() {
            accounts += 1;
            let cur = a["currency"].as_str().unwrap().to_owned();
            let minor =
                |v: &Value| -> i128 { v.as_str().unwrap().replace('.', "").parse().unwrap() };
            let e = sums.entry(cur).or_default();
            e.0 += minor(&a["booked"]);
            e.1 += minor(&a["available"]);
        }
    }
    (sums, accounts)
}

fn as_minor(totals: &BTreeMap<String, (String, String)>) -> BTreeMap<String, (i128, i128)> {
    totals
        .iter()
        .map(|(c, (b, a))| {
            (
                c.clone(),
                (
                    b.replace('.', "").parse().unwrap(),
                    a.replace('.', "").parse().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn demo_serves_balances_equal_to_the_simulators_ledgers_and_its_config_runs_under_sim_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let http = http();

    let started = Instant::now();
    let demo = spawn(&["demo", "--data-dir", data.to_str().unwrap(), "--port", "0"]);
    let info: Value = serde_json::from_str(&wait_for_file(
        &data.join("demo.json"),
        Duration::from_secs(60),
    ))
    .unwrap();
    let base = info["base_url"].as_str().unwrap().to_owned();
    let sims = info["simulators"].as_array().unwrap().clone();
    let families: std::collections::BTreeSet<&str> =
        sims.iter().map(|s| s["family"].as_str().unwrap()).collect();
    assert_eq!(
        families,
        ["cn-xml", "iso20022"].into_iter().collect(),
        "cn-xml banks and an ISO 20022 bank"
    );
    assert!(data.join("bankdirect.toml").is_file());
    assert_eq!(
        info["config"],
        data.join("bankdirect.toml")
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
    );

    let t = token(
        &http,
        &base,
        info["client_id"].as_str().unwrap(),
        info["client_secret"].as_str().unwrap(),
    );
    let (ledger, accounts) = ledger_totals(&http, &sims);
    let body = balances_when_complete(&http, &base, &t, accounts, Duration::from_secs(5));
    println!(
        "demo answered with all balances {:?} after start",
        started.elapsed()
    );
    let banks: std::collections::BTreeSet<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["bank_id"].as_str().unwrap())
        .collect();
    assert!(banks.len() >= 2, "accounts at two or more banks");
    let api = totals(&body["totals"]);
    assert!(
        api.contains_key("CNY") && api.contains_key("USD") && api.contains_key("EUR"),
        "totals across the families: {api:?}"
    );
    assert_eq!(as_minor(&api), ledger);
    drop(demo);

    // The written config is a real one: the banks under `sim`, the gateway under `serve`.
    let config = data.join("bankdirect.toml");
    let _sim = spawn(&["sim", "--config", config.to_str().unwrap()]);
    let _serve = spawn(&["serve", "--config", config.to_str().unwrap()]);
    let start = Instant::now();
    let t = loop {
        if let Ok(resp) = http.get(format!("{base}/healthz")).send() {
            if resp.status() == 200 {
                break token(
                    &http,
                    &base,
                    info["client_id"].as_str().unwrap(),
                    info["client_secret"].as_str().unwrap(),
                );
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let body = balances_when_complete(&http, &base, &t, accounts, Duration::from_secs(20));
    assert_eq!(as_minor(&totals(&body["totals"])), ledger);
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["sim", "--help"],
        vec!["demo", "--help"],
        vec!["migrate", "--help"],
        vec!["clients", "new-secret", "--help"],
        vec!["users", "hash-password", "--help"],
        vec!["users", "totp-secret", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("bankdirect"), "{args:?}: {text}");
        if args.len() > 1 {
            assert!(
                text.contains("Example: bankdirect"),
                "{args:?} has an example: {text}"
            );
        }
    }
}

#[test]
fn a_missing_or_bad_config_says_what_to_do() {
    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/bankdirect.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bankdirect demo"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "data_dir = \"x\"\n[server]\nlisten = 42\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("server.listen"), "{err}");
}

#[test]
fn users_hash_password_reads_stdin_and_prints_a_hash_that_verifies() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["users", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let hash = text
        .trim()
        .strip_prefix("password_hash = \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("a password_hash line: {text}"));
    assert!(crypto::password::verify_password(
        "correct horse battery staple",
        hash
    ));
    assert!(!crypto::password::verify_password("wrong", hash));
    assert!(
        !text.contains("correct horse"),
        "the password is not echoed"
    );

    // An empty password is refused with what to do.
    let mut child = Command::new(BIN)
        .args(["users", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hash-password <"));
}

#[test]
fn users_totp_secret_prints_a_config_line_and_an_otpauth_uri_that_agree() {
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let out = run(&["users", "totp-secret", "--user", "approver1"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let secret = lines[0]
        .strip_prefix("totp_secret = \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("a totp_secret line: {text}"));
    // 160 bits of unpadded base32, and a secret the gateway accepts.
    assert_eq!(secret.len(), 32, "{secret}");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert!(crypto::totp::TotpKey::from_base32(secret).is_ok());
    assert_eq!(
        lines[1],
        format!(
            "otpauth://totp/bankdirect:approver1?secret={secret}&issuer=bankdirect&algorithm=SHA1&digits=6&period=30"
        )
    );
    // The config line is valid TOML for [[users]].
    let parsed: toml::Value = toml::from_str(lines[0]).unwrap();
    assert_eq!(parsed["totp_secret"].as_str(), Some(secret));

    // Fresh every time; an issuer with spaces is percent-encoded.
    let out = run(&[
        "users",
        "totp-secret",
        "--user",
        "approver1",
        "--issuer",
        "bankdirect ACME",
    ]);
    assert!(out.status.success(), "{out:?}");
    let other = String::from_utf8(out.stdout).unwrap();
    assert!(!other.contains(secret), "a new secret each run");
    assert!(
        other.contains("otpauth://totp/bankdirect%20ACME:approver1?secret=")
            && other.contains("&issuer=bankdirect%20ACME&"),
        "{other}"
    );

    // Bad input says what to do.
    let out = run(&[
        "users",
        "totp-secret",
        "--user",
        "approver1",
        "--issuer",
        "a:b",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--issuer"));
    let out = run(&["users", "totp-secret", "--user", "no such user!"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));
}
