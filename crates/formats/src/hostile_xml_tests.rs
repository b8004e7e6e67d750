//! Hostile XML from a bank, against every parser: XXE (an external entity), the
//! "billion laughs" entity expansion, a parameter entity, an entity used without any
//! declaration, and nesting without end. Each is refused with an error that names what
//! was refused; nothing is expanded or fetched (quick-xml resolves no DTD at all, and a
//! DOCTYPE is refused before any entity could be declared).

use crate::{cn_xml, iso20022};

const XXE: &str = "<!DOCTYPE Document [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>";
const LAUGHS: &str = "<!DOCTYPE Document [\n <!ENTITY lol \"lol\">\n <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>";
const PARAMETER: &str =
    "<!DOCTYPE Document [<!ENTITY % remote SYSTEM \"http://169.254.169.254/x.dtd\"> %remote;]>";
const DOCTYPES: [(&str, &str); 3] = [
    ("xxe", XXE),
    ("billion laughs", LAUGHS),
    ("parameter entity", PARAMETER),
];

/// (name, namespace, root element, parser) of every iso20022 message we read.
type Parse = fn(&[u8]) -> Result<(), iso20022::ParseError>;
fn iso_parsers() -> Vec<(&'static str, &'static str, &'static str, Parse)> {
    vec![
        (
            "pain.001",
            "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09",
            "CstmrCdtTrfInitn",
            |b| iso20022::pain001::parse_any(b).map(drop),
        ),
        (
            "pain.002",
            "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12",
            "CstmrPmtStsRpt",
            |b| iso20022::pain002::parse(b).map(drop),
        ),
        (
            "camt.052",
            "urn:iso:std:iso:20022:tech:xsd:camt.052.001.08",
            "BkToCstmrAcctRpt",
            |b| iso20022::camt052::parse(b).map(drop),
        ),
        (
            "camt.053",
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
            "BkToCstmrStmt",
            |b| iso20022::camt053::parse_any(b).map(drop),
        ),
        (
            "camt.054",
            "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08",
            "BkToCstmrDbtCdtNtfctn",
            |b| iso20022::camt054::parse(b).map(drop),
        ),
    ]
}

fn iso_doc(prolog: &str, ns: &str, root: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{prolog}<Document xmlns=\"{ns}\"><{root}><GrpHdr><MsgId>{inner}</MsgId><CreDtTm>2024-01-31T10:00:00</CreDtTm></GrpHdr></{root}></Document>"
    )
}

#[test]
fn iso20022_parsers_refuse_a_doctype_so_no_entity_is_ever_declared() {
    for (name, ns, root, parse) in iso_parsers() {
        for (attack, prolog) in DOCTYPES {
            let text = iso_doc(prolog, ns, root, "&xxe;&lol3;");
            let error = parse(text.as_bytes()).expect_err(name).to_string();
            assert!(
                error.contains("DOCTYPE is not allowed"),
                "{name} / {attack}: {error}"
            );
        }
    }
}

#[test]
fn iso20022_parsers_refuse_an_undeclared_entity() {
    for (name, ns, root, parse) in iso_parsers() {
        let text = iso_doc("", ns, root, "&xxe;");
        let error = parse(text.as_bytes()).expect_err(name).to_string();
        assert!(error.contains("xxe"), "{name}: {error}");
    }
}

#[test]
fn iso20022_parsers_bound_element_depth() {
    let deep = format!("{}x{}", "<Ustrd>".repeat(200), "</Ustrd>".repeat(200));
    for (name, ns, root, parse) in iso_parsers() {
        let text = iso_doc("", ns, root, &deep);
        let error = parse(text.as_bytes()).expect_err(name).to_string();
        assert!(error.contains("depth"), "{name}: {error}");
    }
}

fn cn_doc(prolog: &str, body: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?>\n{prolog}<CNXML><HEAD><FUNC>F</FUNC><SERIAL>S</SERIAL></HEAD><BODY>{body}</BODY></CNXML>"
    )
    .into_bytes()
}

#[test]
fn cn_xml_refuses_a_doctype_an_undeclared_entity_and_deep_nesting() {
    let limits = cn_xml::Limits::default();
    for (attack, prolog) in DOCTYPES {
        let prolog = prolog.replace("Document", "CNXML");
        let error = cn_xml::decode(&cn_doc(&prolog, "<A><F>&xxe;&lol3;</F></A>"), &limits)
            .expect_err(attack);
        assert!(
            matches!(
                error,
                cn_xml::DecodeError::Forbidden {
                    what: "a DOCTYPE declaration",
                    ..
                }
            ),
            "{attack}: {error:?}"
        );
    }
    let error = cn_xml::decode(&cn_doc("", "<A><F>&xxe;</F></A>"), &limits).expect_err("entity");
    assert!(
        matches!(&error, cn_xml::DecodeError::UnknownEntity { name, .. } if name == "xxe"),
        "{error:?}"
    );
    // The packet's shape is fixed (root, head or body, block, field): nesting past a
    // field is refused at the first level too many, long before `max_depth`.
    let deep = format!("<A>{}x{}</A>", "<F>".repeat(100), "</F>".repeat(100));
    let error = cn_xml::decode(&cn_doc("", &deep), &limits).expect_err("depth");
    assert!(
        error.to_string().contains("nested inside a field"),
        "{error}"
    );
}
