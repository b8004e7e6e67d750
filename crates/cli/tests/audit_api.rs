//! The audit chain end to end with the real binary: `bankdirect demo` writes audit records
//! (token requests, refreshes), `GET /v1/audit` lists them with their chain positions and
//! hashes and refuses bad parameters by name, the checkpoint key was created 0600 in the
//! data dir, and after the gateway is killed `audit verify` and `audit export-head` accept
//! what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

fn wait_for_json(path: &Path, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str(&text) {
                return v;
            }
        }
        assert!(
            start.elapsed() < within,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token_status(http: &reqwest::blocking::Client, base: &str, id: &str, secret: &str) -> Value {
    let resp = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let mut body: Value = resp.json().unwrap_or(Value::Null);
    body["_status"] = status.into();
    body
}

fn get(http: &reqwest::blocking::Client, url: &str, token: &str) -> (u16, Value) {
    let resp = http.get(url).bearer_auth(token).send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

#[test]
fn the_gateway_chains_its_audit_records_and_lists_them_for_audit_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let http = http();
    let demo = Running(
        Command::new(BIN)
            .args(["demo", "--data-dir", data.to_str().unwrap(), "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let info = wait_for_json(&data.join("demo.json"), Duration::from_secs(60));
    let base = info["base_url"].as_str().unwrap().to_owned();
    let id = info["client_id"].as_str().unwrap();
    let secret = info["client_secret"].as_str().unwrap();

    // Audited: a refused and an accepted token request.
    assert_eq!(
        token_status(&http, &base, id, "wrong-secret")["_status"],
        401
    );
    let ok = token_status(&http, &base, id, secret);
    assert_eq!(ok["_status"], 200);
    let token = ok["access_token"].as_str().unwrap().to_owned();

    let (status, body) = get(&http, &format!("{base}/v1/audit?limit=500"), &token);
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 2, "{body}");
    // SQLite links inside the writer's commit: every listed record is already linked,
    // positions follow ids.
    let mut last_position = 0;
    for item in items {
        let position = item["position"].as_i64().expect("linked at commit");
        assert!(position > last_position);
        last_position = position;
        assert_eq!(item["hash"].as_str().unwrap().len(), 64);
    }
    assert!(
        items
            .iter()
            .any(|i| i["outcome"] != "ok" || i["action"].as_str().unwrap().contains("token")),
        "the token requests are audited: {body}"
    );

    // Filters and paging.
    let first = &items[0];
    let actor = first["actor"].as_str().unwrap();
    let (status, by_actor) = get(
        &http,
        &format!("{base}/v1/audit?actor={}&limit=1", urlencode(actor)),
        &token,
    );
    assert_eq!(status, 200);
    assert_eq!(by_actor["items"][0]["actor"], actor);
    if let Some(cursor) = by_actor["next_cursor"].as_str() {
        let (status, next) = get(
            &http,
            &format!(
                "{base}/v1/audit?actor={}&limit=1&cursor={cursor}",
                urlencode(actor)
            ),
            &token,
        );
        assert_eq!(status, 200);
        assert!(next["items"][0]["id"].as_i64() > by_actor["items"][0]["id"].as_i64());
    }
    let (status, none) = get(
        &http,
        &format!("{base}/v1/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z"),
        &token,
    );
    assert_eq!(status, 200);
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    // Bad parameters are problems naming them.
    for (query, field) in [
        ("from=yesterday", "query.from"),
        ("to=2026-13-01", "query.to"),
        (
            "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "query.to",
        ),
        ("limit=0", "query.limit"),
        ("cursor=not-a-cursor", "query.cursor"),
        ("actor=", "query.actor"),
    ] {
        let (status, problem) = get(&http, &format!("{base}/v1/audit?{query}"), &token);
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    let (status, _) = get(&http, &format!("{base}/v1/audit"), "not-a-token");
    assert_eq!(status, 401);

    // The checkpoint key: in the data dir, owner-only.
    let key = data.join("audit-checkpoint-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the checkpoint key is 0600");
    }
    // The first checkpoint is signed at once (the chainer runs every 200 ms).
    let config = data.join("bankdirect.toml");
    let start = Instant::now();
    let head = loop {
        let out = Command::new(BIN)
            .args(["audit", "export-head", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(demo);
    let out = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--head",
            head.trim(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("audit chain intact:"), "{stdout}");
    assert!(stdout.contains("reaches the exported head"), "{stdout}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
