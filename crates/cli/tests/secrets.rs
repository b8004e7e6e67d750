#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `bankdirect secrets` through the real binary: a master key made, a secret
//! sealed from standard input, a configuration whose sealed TOTP secret and
//! sealed TLS key file are rotated to a new master key (and open under it,
//! not under the old one), and a rotation that can be run again.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crypto::sealed::MasterKey;

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("BANKDIRECT_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn seal_and_rotate_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = dir.path().join("old.key");
    let new_key = dir.path().join("new.key");
    for key in [&old_key, &new_key] {
        let out = run(&["secrets", "new-master-key", "--out", path(key)], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Never overwritten.
    let again = run(
        &["secrets", "new-master-key", "--out", path(&old_key)],
        None,
    );
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("never overwritten"));
    let old = MasterKey::from_file(&old_key).unwrap();
    let new = MasterKey::from_file(&new_key).unwrap();

    // Seal a TOTP secret and a PEM key from standard input.
    let totp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let out = run(
        &["secrets", "seal", "--master-key-file", path(&old_key)],
        Some(&format!("{totp}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sealed_totp = text(&out.stdout).trim().to_owned();
    assert!(sealed_totp.starts_with("sealed:v1:"), "{sealed_totp}");
    assert!(!sealed_totp.contains(totp));
    assert_eq!(old.open(&sealed_totp).unwrap().expose_secret(), totp);
    let pem = "-----BEGIN PRIVATE KEY-----\nQUFBQQ==\n-----END PRIVATE KEY-----\n";
    let out = run(
        &["secrets", "seal", "--master-key-file", path(&old_key)],
        Some(pem),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_file = dir.path().join("client.key.sealed");
    std::fs::write(&key_file, text(&out.stdout)).unwrap();
    let signing_file = dir.path().join("sign.key.sealed");
    std::fs::write(&signing_file, old.seal("SIGNING KEY PEM")).unwrap();
    // Empty input, and input that is sealed already, are refused.
    let out = run(
        &["secrets", "seal", "--master-key-file", path(&old_key)],
        Some(""),
    );
    assert!(!out.status.success());
    let out = run(
        &["secrets", "seal", "--master-key-file", path(&old_key)],
        Some(&sealed_totp),
    );
    assert!(
        text(&out.stderr).contains("sealed already"),
        "{}",
        text(&out.stderr)
    );

    let config = dir.path().join("bankdirect.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n\n[secrets]\nmaster_key_file = \"old.key\"\n\n[[connections]]\nid = \"h2h\"\nbank = \"hausbank\"\nendpoint = \"https://h2h.example/\"\nlogin = \"P1\"\ntls = {{ ca_cert = \"ca.pem\", client_cert = \"client.pem\", client_key = \"client.key.sealed\" }}\nsigning = {{ key = \"sign.key.sealed\", bank_certificates = [\"bank.pem\"] }}\n\n[[users]]\nid = \"ops\"\nroles = [\"admin\"]\naccounts = [\"*\"]\ntotp_secret = \"{sealed_totp}\"\n"
        ),
    )
    .unwrap();

    let original = std::fs::read_to_string(&config).unwrap();
    // Rotate: the configuration's own key file is the old key by default.
    let out = run(
        &[
            "secrets",
            "rotate",
            "--config",
            path(&config),
            "--new-master-key-file",
            path(&new_key),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("re-sealed 1 value(s)")
            && text(&out.stdout).contains("2 key file(s)"),
        "{}",
        text(&out.stdout)
    );
    let rotated = std::fs::read_to_string(&config).unwrap();
    assert!(!rotated.contains(&sealed_totp));
    let token = rotated
        .split('"')
        .find(|t| t.starts_with("sealed:v1:"))
        .unwrap();
    assert_eq!(new.open(token).unwrap().expose_secret(), totp);
    assert!(old.open(token).is_err());
    let signing_sealed = std::fs::read_to_string(&signing_file).unwrap();
    assert_eq!(
        new.open(signing_sealed.trim()).unwrap().expose_secret(),
        "SIGNING KEY PEM"
    );
    let key_sealed = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(
        new.open(key_sealed.trim()).unwrap().expose_secret(),
        pem.trim_end()
    );
    // Everything else of the file is kept as written.
    assert_eq!(
        rotated.replace(token, "@"),
        original.replace(&sealed_totp, "@")
    );
    assert!(rotated.contains("master_key_file = \"old.key\""));

    // Run again (as after an interruption): nothing left to do, nothing broken.
    let out = run(
        &[
            "secrets",
            "rotate",
            "--config",
            path(&config),
            "--master-key-file",
            path(&old_key),
            "--new-master-key-file",
            path(&new_key),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("re-sealed 0 value(s)"),
        "{}",
        text(&out.stdout)
    );

    // A value under a key that is neither is named with its line.
    let stranger = MasterKey::generate();
    std::fs::write(&config, rotated.replace(token, &stranger.seal("x"))).unwrap();
    let other_new = dir.path().join("newer.key");
    run(
        &["secrets", "new-master-key", "--out", path(&other_new)],
        None,
    );
    let out = run(
        &[
            "secrets",
            "rotate",
            "--config",
            path(&config),
            "--master-key-file",
            path(&new_key),
            "--new-master-key-file",
            path(&other_new),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(stranger.id()) && err.contains("bankdirect.toml:"),
        "{err}"
    );
}

#[test]
fn help_says_what_each_command_does_with_an_example() {
    for command in ["new-master-key", "seal", "rotate"] {
        let out = run(&["secrets", command, "--help"], None);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains("Example: bankdirect secrets"),
            "{command}: {}",
            text(&out.stdout)
        );
    }
}
