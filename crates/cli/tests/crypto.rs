//! `bankdirect crypto …` through the real binary: every command's help has
//! an example, signatures round-trip and a failed verification exits 1,
//! SM3/SM4 give the standard values, and `inspect` names the mistake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bankdirect");

fn bd(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_crypto_command_explains_itself_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        "sm2-sign",
        "sm2-verify",
        "sm3",
        "sm4-encrypt",
        "sm4-decrypt",
        "rsa-sign",
        "rsa-verify",
        "keygen",
        "inspect",
    ] {
        let out = bd(dir.path(), &["crypto", command, "--help"]);
        assert!(out.status.success(), "{command}");
        let help = text(&out);
        assert!(help.contains("Example"), "{command}: {help}");
        assert!(
            help.contains(&format!("bankdirect crypto {command}")),
            "{command}: {help}"
        );
    }
}

#[test]
fn sm2_keygen_sign_verify_and_a_changed_message_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = bd(
        d,
        &[
            "crypto",
            "keygen",
            "--alg",
            "sm2",
            "--out",
            "k.pem",
            "--pub",
            "k.pub.pem",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let again = bd(d, &["crypto", "keygen", "--alg", "sm2", "--out", "k.pem"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    std::fs::write(d.join("msg.xml"), "<CMS>100.00</CMS>\r\n").unwrap();
    let out = bd(
        d,
        &[
            "crypto", "sm2-sign", "--key", "k.pem", "--in", "msg.xml", "--out", "msg.sig",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(d.join("msg.sig")).unwrap()[0], 0x30, "DER");
    let ok = bd(
        d,
        &[
            "crypto",
            "sm2-verify",
            "--key",
            "k.pub.pem",
            "--in",
            "msg.xml",
            "--sig",
            "msg.sig",
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).starts_with("OK"));

    let out = bd(
        d,
        &[
            "crypto", "sm2-sign", "--key", "k.pem", "--in", "msg.xml", "--out", "raw.sig", "--raw",
        ],
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(d.join("raw.sig")).unwrap().len(), 64);
    let ok = bd(
        d,
        &[
            "crypto",
            "sm2-verify",
            "--key",
            "k.pem",
            "--in",
            "msg.xml",
            "--sig",
            "raw.sig",
        ],
    );
    assert!(
        ok.status.success(),
        "raw accepted, private key file accepted: {}",
        text(&ok)
    );

    std::fs::write(d.join("changed.xml"), "<CMS>900.00</CMS>\r\n").unwrap();
    let bad = bd(
        d,
        &[
            "crypto",
            "sm2-verify",
            "--key",
            "k.pub.pem",
            "--in",
            "changed.xml",
            "--sig",
            "msg.sig",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let message = text(&bad);
    assert!(
        message.contains("FAILED") && message.contains("does not verify"),
        "{message}"
    );
    assert!(message.contains("bankdirect crypto inspect"), "{message}");
    // An RSA command refuses an SM2 key, saying so.
    let wrong = bd(
        d,
        &[
            "crypto",
            "rsa-verify",
            "--key",
            "k.pub.pem",
            "--in",
            "msg.xml",
            "--sig",
            "msg.sig",
        ],
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong).contains("Sm2 key, not Rsa"),
        "{}",
        text(&wrong)
    );
    // The private key never shows in any output.
    let pem = std::fs::read_to_string(d.join("k.pem")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    for out in [&ok, &bad, &wrong] {
        assert!(!text(out).contains(body));
    }
}

#[test]
fn inspect_explains_a_key_and_names_the_wrong_id_and_the_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(bd(
        d,
        &["crypto", "keygen", "--alg", "sm2", "--out", "k.pem", "--pub", "k.pub"]
    )
    .status
    .success());
    let out = bd(d, &["crypto", "inspect", "--key", "k.pub"]);
    let info = text(&out);
    assert!(out.status.success(), "{info}");
    assert!(
        info.contains("curve:             SM2") && info.contains("SM2-with-SM3"),
        "{info}"
    );
    assert!(info.contains("SPKI SHA-256:"), "{info}");

    std::fs::write(d.join("m"), "pay 100.00\n").unwrap();
    std::fs::write(d.join("m-lf-dropped"), "pay 100.00").unwrap();
    assert!(bd(
        d,
        &["crypto", "sm2-sign", "--key", "k.pem", "--in", "m", "--out", "s-empty", "--id", ""]
    )
    .status
    .success());
    let out = bd(
        d,
        &[
            "crypto", "inspect", "--key", "k.pub", "--in", "m", "--sig", "s-empty",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("EMPTY SM2 id"), "{}", text(&out));

    assert!(bd(
        d,
        &["crypto", "sm2-sign", "--key", "k.pem", "--in", "m", "--out", "s"]
    )
    .status
    .success());
    let out = bd(
        d,
        &[
            "crypto",
            "inspect",
            "--key",
            "k.pub",
            "--in",
            "m-lf-dropped",
            "--sig",
            "s",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("ended with a newline"),
        "{}",
        text(&out)
    );
    let out = bd(
        d,
        &[
            "crypto", "inspect", "--key", "k.pub", "--in", "m", "--sig", "s",
        ],
    );
    assert!(out.status.success());
    assert!(text(&out).contains("VERIFIES as given"), "{}", text(&out));
}

#[test]
fn sm3_and_sm4_give_the_standard_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("abc"), "abc").unwrap();
    let out = bd(d, &["crypto", "sm3", "--in", "abc"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    std::fs::write(d.join("k"), "0123456789abcdeffedcba9876543210\n").unwrap();
    std::fs::write(
        d.join("p"),
        [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ],
    )
    .unwrap();
    let out = bd(
        d,
        &[
            "crypto",
            "sm4-encrypt",
            "--key",
            "k",
            "--mode",
            "ecb",
            "--no-padding",
            "--in",
            "p",
            "--out",
            "c",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        crypto::hex::encode(&std::fs::read(d.join("c")).unwrap()),
        "681edf34d206965e86b3e94f536e4246"
    );
    // GCM round trip, and tampering is refused.
    let nonce = "00001234567800000000abcd";
    let out = bd(
        d,
        &[
            "crypto",
            "sm4-encrypt",
            "--key",
            "k",
            "--mode",
            "gcm",
            "--iv",
            nonce,
            "--in",
            "abc",
            "--out",
            "g",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(d.join("g")).unwrap().len(), 3 + 16);
    let out = bd(
        d,
        &[
            "crypto",
            "sm4-decrypt",
            "--key",
            "k",
            "--mode",
            "gcm",
            "--iv",
            nonce,
            "--in",
            "g",
            "--out",
            "back",
        ],
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(d.join("back")).unwrap(), b"abc");
    let mut sealed = std::fs::read(d.join("g")).unwrap();
    sealed[0] ^= 1;
    std::fs::write(d.join("g2"), sealed).unwrap();
    let out = bd(
        d,
        &[
            "crypto",
            "sm4-decrypt",
            "--key",
            "k",
            "--mode",
            "gcm",
            "--iv",
            nonce,
            "--in",
            "g2",
            "--out",
            "back2",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("does not authenticate"),
        "{}",
        text(&out)
    );
    // CBC without an IV says what to give; the key never shows.
    let out = bd(
        d,
        &[
            "crypto",
            "sm4-encrypt",
            "--key",
            "k",
            "--in",
            "abc",
            "--out",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--iv"), "{}", text(&out));
    assert!(!text(&out).contains("0123456789abcdef"));
}
