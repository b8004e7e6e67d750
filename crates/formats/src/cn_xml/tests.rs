//! Unit tests of the packet codec: one test per rejection `decode` promises,
//! and the encoder's refusals. Round-trip properties and fixtures live in
//! `crates/formats/tests/`.

use super::*;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"GBK\"?>\n";

fn limits() -> Limits {
    Limits::default()
}

/// A packet with `body` between a minimal valid head and the end of the root.
fn doc(body: &str) -> String {
    format!("{DECL}<CNXML><HEAD><FUNC>F</FUNC><SERIAL>S</SERIAL></HEAD>{body}</CNXML>")
}

fn decode_str(text: &str) -> Result<Packet, DecodeError> {
    decode(&gbk(text), &limits())
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = GBK.encode(text);
    assert!(!had_errors, "test text must be GBK-encodable");
    bytes.into_owned()
}

fn structure_problem(result: Result<Packet, DecodeError>) -> (String, String) {
    match result {
        Err(DecodeError::Structure { path, problem, .. }) => (path, problem),
        other => panic!("expected a structure error, got {other:?}"),
    }
}

#[test]
fn decodes_minimal_packet_with_empty_and_chinese_fields() {
    let text = format!(
        "{DECL}<CNXML>\n <HEAD>\n  <FUNC>ListAccounts</FUNC>\n  <SERIAL>R1</SERIAL>\n  <RETCODE>0</RETCODE>\n  <RETMSG/>\n </HEAD>\n <BODY>\n  <ACCOUNT><ACCNO>1</ACCNO><ACCNAM>  招商 &amp; 张三  </ACCNAM></ACCOUNT>\n </BODY>\n</CNXML>\n"
    );
    let packet = decode(&gbk(&text), &limits()).unwrap();
    assert_eq!(packet.head.func, "ListAccounts");
    assert_eq!(packet.head.ret_msg.as_deref(), Some(""));
    assert_eq!(packet.head.login, None);
    assert_eq!(packet.body.len(), 1);
    assert_eq!(packet.body[0].get("ACCNAM"), Some("  招商 & 张三  "));
}

#[test]
fn missing_body_means_no_blocks() {
    assert_eq!(decode_str(&doc("")).unwrap().body, Vec::new());
}

#[test]
fn cdata_and_comments_inside_a_field_join_into_its_text() {
    let packet = decode_str(&doc(
        "<BODY><B><F>a<!-- note -->b<![CDATA[<&>]]></F></B></BODY>",
    ))
    .unwrap();
    assert_eq!(packet.body[0].get("F"), Some("ab<&>"));
}

#[test]
fn character_references_are_decoded() {
    let packet = decode_str(&doc("<BODY><B><F>&#x4E2D;&#22269;&#13;</F></B></BODY>")).unwrap();
    assert_eq!(packet.body[0].get("F"), Some("中国\r"));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let text = doc("");
    let small = Limits {
        max_bytes: text.len() - 1,
        ..limits()
    };
    assert_eq!(
        decode(text.as_bytes(), &small),
        Err(DecodeError::TooLarge {
            size_bytes: text.len(),
            max_bytes: text.len() - 1
        })
    );
}

#[test]
fn invalid_gb18030_reports_the_offset_of_the_bad_byte() {
    let mut bytes = doc("<BODY><B><F>x</F></B></BODY>").into_bytes();
    let at = bytes.len() - 20;
    // 0x81 is a lead byte; 0x20 is no valid trail byte.
    bytes.splice(at..at, [0x81, 0x20]);
    assert_eq!(
        decode(&bytes, &limits()),
        Err(DecodeError::Encoding { offset: at })
    );
    let mut lone_ff = doc("").into_bytes();
    lone_ff.insert(3, 0xFF);
    assert_eq!(
        decode(&lone_ff, &limits()),
        Err(DecodeError::Encoding { offset: 3 })
    );
}

#[test]
fn truncated_multibyte_sequence_at_the_end_is_an_encoding_error() {
    let mut bytes = gbk(&doc(""));
    bytes.push(0xD6);
    assert!(matches!(
        decode(&bytes, &limits()),
        Err(DecodeError::Encoding { .. })
    ));
}

#[test]
fn declared_non_gbk_encoding_is_refused() {
    let text = doc("").replace("encoding=\"GBK\"", "encoding=\"UTF-8\"");
    assert_eq!(
        decode_str(&text),
        Err(DecodeError::DeclaredEncoding {
            declared: "UTF-8".to_owned()
        })
    );
    for label in ["gb2312", "GB18030", "x-gbk"] {
        let text = doc("").replace("GBK", label);
        assert!(decode_str(&text).is_ok(), "{label} must be accepted");
    }
}

#[test]
fn xml_version_other_than_1_0_is_refused() {
    let text = doc("").replace("1.0", "1.1");
    assert!(matches!(decode_str(&text), Err(DecodeError::Xml { .. })));
}

#[test]
fn declaration_after_other_content_is_refused() {
    let text = format!(" {}", doc(""));
    let (_, problem) = structure_problem(decode_str(&text));
    assert!(problem.contains("declaration"), "{problem}");
}

#[test]
fn doctype_is_refused() {
    let text = doc("").replace("<CNXML>", "<!DOCTYPE CNXML [<!ENTITY a \"aaaa\">]><CNXML>");
    assert!(matches!(
        decode_str(&text),
        Err(DecodeError::Forbidden {
            what: "a DOCTYPE declaration",
            ..
        })
    ));
}

#[test]
fn processing_instruction_is_refused() {
    let text = doc("<?php echo 1; ?>");
    assert!(matches!(
        decode_str(&text),
        Err(DecodeError::Forbidden {
            what: "a processing instruction",
            ..
        })
    ));
}

#[test]
fn unknown_entity_reference_is_refused_with_its_path() {
    let result = decode_str(&doc("<BODY><A/><A><F>&nbsp;</F></A></BODY>"));
    match result {
        Err(DecodeError::UnknownEntity { path, name, at }) => {
            assert_eq!(path, "BODY/A[2]/F");
            assert_eq!(name, "nbsp");
            assert_eq!(at.line, 2);
        }
        other => panic!("expected UnknownEntity, got {other:?}"),
    }
}

#[test]
fn bare_ampersand_is_refused() {
    assert!(matches!(
        decode_str(&doc("<BODY><A><F>a & b</F></A></BODY>")),
        Err(DecodeError::Xml { .. })
    ));
}

#[test]
fn mismatched_tag_is_refused_with_position() {
    let result = decode_str(&doc("<BODY><A><F>1</G></A></BODY>"));
    match result {
        Err(DecodeError::Xml { detail, at }) => {
            assert!(
                detail.contains("</F>") && detail.contains("</G>"),
                "{detail}"
            );
            assert_eq!(at.line, 2);
        }
        other => panic!("expected Xml, got {other:?}"),
    }
}

#[test]
fn unclosed_tags_are_refused() {
    let text = doc("<BODY><A><F>1</F></A></BODY>");
    let cut = text.len() - "</BODY></CNXML>".len();
    let (path, problem) = structure_problem(decode_str(&text[..cut]));
    assert_eq!(path, "BODY");
    assert!(problem.contains("not closed"), "{problem}");
    // Cut inside a tag: the XML reader notices first.
    assert!(decode_str(&text[..cut + 3]).is_err());
}

#[test]
fn empty_input_and_whitespace_only_input_are_refused() {
    assert!(matches!(decode_str(""), Err(DecodeError::Structure { .. })));
    assert!(matches!(
        decode_str(DECL),
        Err(DecodeError::Structure { .. })
    ));
}

#[test]
fn trailing_garbage_after_root_is_refused() {
    let (path, problem) = structure_problem(decode_str(&format!("{}junk", doc(""))));
    assert_eq!(path, "(document)");
    assert!(problem.contains("after the root"), "{problem}");
    let (_, problem) = structure_problem(decode_str(&format!("{}<CNXML/>", doc(""))));
    assert!(problem.contains("after the root"), "{problem}");
    // Whitespace and comments after the root are fine.
    assert!(decode_str(&format!("{}\n<!-- end -->\n", doc(""))).is_ok());
}

#[test]
fn wrong_root_is_refused() {
    let text = doc("").replace("CNXML", "OTHER");
    let (_, problem) = structure_problem(decode_str(&text));
    assert!(problem.contains("expected <CNXML>"), "{problem}");
}

#[test]
fn text_directly_in_body_is_refused() {
    let (path, problem) = structure_problem(decode_str(&doc("<BODY>oops<A/></BODY>")));
    assert_eq!(path, "BODY");
    assert!(problem.contains("text directly in BODY"), "{problem}");
}

#[test]
fn text_directly_in_a_block_is_refused() {
    let (path, _) = structure_problem(decode_str(&doc("<BODY><A>1<F/></A></BODY>")));
    assert_eq!(path, "BODY/A[1]");
}

#[test]
fn text_in_root_or_head_is_refused() {
    assert!(decode_str(&doc("x")).is_err());
    let text = doc("").replace("<HEAD>", "<HEAD>x");
    let (path, _) = structure_problem(decode_str(&text));
    assert_eq!(path, "HEAD");
}

#[test]
fn nested_element_inside_a_field_is_refused() {
    let (path, problem) =
        structure_problem(decode_str(&doc("<BODY><A><F><G>1</G></F></A></BODY>")));
    assert_eq!(path, "BODY/A[1]/F");
    assert!(problem.contains("nested"), "{problem}");
    let text = doc("").replace("<FUNC>F</FUNC>", "<FUNC><X/></FUNC>");
    let (path, _) = structure_problem(decode_str(&text));
    assert_eq!(path, "HEAD/FUNC");
}

#[test]
fn missing_head_func_or_serial_is_refused() {
    let no_head = format!("{DECL}<CNXML><BODY/></CNXML>");
    let (_, problem) = structure_problem(decode_str(&no_head));
    assert!(problem.contains("BODY must come after HEAD"), "{problem}");
    let no_head_no_body = format!("{DECL}<CNXML></CNXML>");
    let (path, problem) = structure_problem(decode_str(&no_head_no_body));
    assert_eq!(
        (path.as_str(), problem.as_str()),
        ("CNXML", "HEAD is missing")
    );

    let no_func = doc("").replace("<FUNC>F</FUNC>", "");
    let (path, _) = structure_problem(decode_str(&no_func));
    assert_eq!(path, "HEAD/FUNC");
    let no_serial = doc("").replace("<SERIAL>S</SERIAL>", "");
    let (path, _) = structure_problem(decode_str(&no_serial));
    assert_eq!(path, "HEAD/SERIAL");
}

#[test]
fn unknown_or_repeated_head_fields_are_refused() {
    let unknown = doc("").replace("<SERIAL>", "<EXTRA>1</EXTRA><SERIAL>");
    let (_, problem) = structure_problem(decode_str(&unknown));
    assert!(problem.contains("<EXTRA>"), "{problem}");
    let repeated = doc("").replace("<SERIAL>", "<FUNC>G</FUNC><SERIAL>");
    let (_, problem) = structure_problem(decode_str(&repeated));
    assert!(problem.contains("FUNC appears twice"), "{problem}");
}

#[test]
fn repeated_head_or_body_and_unknown_root_children_are_refused() {
    assert!(decode_str(&doc("<BODY/><BODY/>")).is_err());
    assert!(decode_str(&doc("<HEAD/>")).is_err());
    assert!(decode_str(&doc("<TAIL/>")).is_err());
}

#[test]
fn attributes_are_refused() {
    let (path, problem) = structure_problem(decode_str(&doc("<BODY><A x=\"1\"/></BODY>")));
    assert_eq!(path, "BODY/A[1]");
    assert!(problem.contains("attributes"), "{problem}");
    // Whitespace before `>` or `/>` is not an attribute.
    assert!(decode_str(&doc("<BODY ><A\n/></BODY >")).is_ok());
}

#[test]
fn invalid_element_names_are_refused() {
    for name in ["a", "1A", "A-B", "NS:A", "中文"] {
        let text = doc(&format!("<BODY><{name}/></BODY>"));
        assert!(
            matches!(decode_str(&text), Err(DecodeError::Structure { .. })),
            "{name} must be refused"
        );
    }
    let long = "A".repeat(MAX_NAME_BYTES + 1);
    assert!(decode_str(&doc(&format!("<BODY><{long}/></BODY>"))).is_err());
}

#[test]
fn control_characters_are_refused_even_as_references() {
    let raw = decode_str(&doc("<BODY><A><F>a\u{1}b</F></A></BODY>"));
    assert!(
        matches!(raw, Err(DecodeError::InvalidChar { ch: '\u{1}', .. })),
        "{raw:?}"
    );
    let reference = decode_str(&doc("<BODY><A><F>a&#1;b</F></A></BODY>"));
    assert!(reference.is_err(), "{reference:?}");
}

#[test]
fn depth_limit_is_enforced() {
    let shallow = Limits {
        max_depth: 3,
        ..limits()
    };
    let text = doc("<BODY><A><F>1</F></A></BODY>");
    match decode(text.as_bytes(), &shallow) {
        Err(DecodeError::Limit {
            path, kind, max, ..
        }) => {
            assert_eq!(
                (path.as_str(), kind, max),
                ("BODY/A[1]/F", LimitKind::Depth, 3)
            );
        }
        other => panic!("expected a depth limit error, got {other:?}"),
    }
    // Deep nesting ends at the first element the packet shape does not
    // allow; nothing recurses, so there is no stack to exhaust.
    let deep = format!("{}{}", "<A>".repeat(100_000), "</A>".repeat(100_000));
    assert!(decode_str(&deep).is_err());
}

#[test]
fn block_and_field_count_limits_are_enforced() {
    let tight = Limits {
        max_blocks: 2,
        max_fields_per_block: 2,
        ..limits()
    };
    let three_blocks = doc("<BODY><A/><A/><A/></BODY>");
    assert!(matches!(
        decode(three_blocks.as_bytes(), &tight),
        Err(DecodeError::Limit {
            kind: LimitKind::Blocks,
            max: 2,
            ..
        })
    ));
    let two_blocks = doc("<BODY><A/><A/></BODY>");
    assert!(decode(two_blocks.as_bytes(), &tight).is_ok());
    let three_fields = doc("<BODY><A><F/><G/><H/></A></BODY>");
    assert!(matches!(
        decode(three_fields.as_bytes(), &tight),
        Err(DecodeError::Limit {
            kind: LimitKind::FieldsPerBlock,
            ..
        })
    ));
}

#[test]
fn text_size_limit_counts_unescaped_bytes_across_pieces() {
    let tight = Limits {
        max_text_bytes: 4,
        ..limits()
    };
    let fits = doc("<BODY><A><F>&amp;&amp;&amp;&amp;</F></A></BODY>");
    assert!(decode(fits.as_bytes(), &tight).is_ok());
    let over = doc("<BODY><A><F>ab<!-- -->cde</F></A></BODY>");
    assert!(matches!(
        decode(over.as_bytes(), &tight),
        Err(DecodeError::Limit {
            kind: LimitKind::TextBytes,
            ..
        })
    ));
    let head_over = doc("").replace("<SERIAL>S<", "<SERIAL>SSSSS<");
    assert!(decode(head_over.as_bytes(), &tight).is_err());
}

#[test]
fn errors_do_not_echo_long_input() {
    let long = "A".repeat(5000);
    let text = doc(&format!("<BODY><B><F>1</{long}></B></BODY>"));
    let message = decode_str(&text).unwrap_err().to_string();
    assert!(message.len() < 300, "{message}");
    let entity = doc(&format!("<BODY><B><F>&{long};</F></B></BODY>"));
    let message = decode_str(&entity).unwrap_err().to_string();
    assert!(message.len() < 300, "{message}");
}

#[test]
fn position_counts_lines_and_characters() {
    // The nested <G/> starts after five characters (ten GBK bytes) on line 4.
    let text = doc("<BODY>\n<A>\n<F>中文<G/></F></A></BODY>");
    match decode(&gbk(&text), &limits()) {
        Err(DecodeError::Structure { at, .. }) => {
            assert_eq!(at, TextPosition { line: 4, column: 6 });
        }
        other => panic!("expected a structure error, got {other:?}"),
    }
}

#[test]
fn password_travels_after_the_login_and_never_prints() {
    let mut packet = sample_packet();
    packet.head.password = Some("密码&<1".to_owned());
    let bytes = encode(&packet).unwrap();
    let (text, _, _) = GBK.decode(&bytes);
    let login = text.find("<LOGIN>").unwrap();
    let passwd = text.find("<PASSWD>密码&amp;&lt;1</PASSWD>").unwrap();
    let data_type = text.find("<DATATYPE>").unwrap();
    assert!(login < passwd && passwd < data_type, "{text}");
    assert_eq!(decode(&bytes, &Limits::default()).unwrap(), packet);
    let debug = format!("{packet:?}");
    assert!(!debug.contains("密码"), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
}

fn sample_packet() -> Packet {
    Packet {
        head: Head {
            func: "QueryBalance".to_owned(),
            login: Some("DEMO01".to_owned()),
            password: None,
            data_type: Some("2".to_owned()),
            serial: "R0123456789".to_owned(),
            ret_code: None,
            ret_msg: None,
        },
        body: vec![
            Block::new("ACCOUNT").with("ACCNO", "1"),
            Block::new("ACCOUNT")
                .with("ACCNO", "2")
                .with("ACCNAM", "<张三 & \"李四\">\r\n"),
        ],
    }
}

#[test]
fn encode_escapes_and_round_trips() {
    let packet = sample_packet();
    let bytes = encode(&packet).unwrap();
    assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"GBK\"?>\n<CNXML>"));
    let text = GB18030.decode_without_bom_handling(&bytes).0.into_owned();
    assert!(
        text.contains("&lt;张三 &amp; \"李四\"&gt;&#13;\n"),
        "{text}"
    );
    assert_eq!(decode(&bytes, &limits()).unwrap(), packet);
}

#[test]
fn encode_writes_empty_body_and_omits_absent_head_fields() {
    let mut packet = sample_packet();
    packet.body.clear();
    packet.head.login = None;
    let bytes = encode(&packet).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("<BODY></BODY>"), "{text}");
    assert!(!text.contains("LOGIN"), "{text}");
    assert_eq!(decode(&bytes, &limits()).unwrap(), packet);
}

#[test]
fn encode_refuses_unencodable_character_with_path() {
    // U+E82C and U+E78D: private-use code points that GBK would write as
    // bytes decoding to U+9FB7 and U+FE10 (found by the fuzz target).
    for ch in ['😀', 'ẞ', '\u{E5E5}', '\u{E82C}', '\u{E78D}'] {
        let mut packet = sample_packet();
        packet.body[1].fields[1].1 = format!("张三{ch}");
        assert_eq!(
            encode(&packet),
            Err(EncodeError::Unencodable {
                path: "BODY/ACCOUNT[2]/ACCNAM".to_owned(),
                ch
            })
        );
    }
    let mut packet = sample_packet();
    packet.head.ret_msg = Some("😀".to_owned());
    let error = encode(&packet).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HEAD/RETMSG: character '😀' (U+1F600) cannot be encoded in GBK"
    );
}

#[test]
fn encode_keeps_user_defined_private_use_characters() {
    // U+E000 is in GBK's user-defined area (AAA1) and round-trips.
    let mut packet = sample_packet();
    packet.body[1].fields[1].1 = "张\u{E000}".to_owned();
    let bytes = encode(&packet).unwrap();
    assert_eq!(decode(&bytes, &limits()).unwrap(), packet);
}

#[test]
fn encode_refuses_control_characters() {
    let mut packet = sample_packet();
    packet.head.serial = "R\u{0}".to_owned();
    assert_eq!(
        encode(&packet),
        Err(EncodeError::InvalidChar {
            path: "HEAD/SERIAL".to_owned(),
            ch: '\u{0}'
        })
    );
}

#[test]
fn encode_refuses_invalid_names() {
    for name in ["", "a", "1A", "A B", "A<B", "中"] {
        let mut packet = sample_packet();
        packet.body[0].name = name.to_owned();
        assert!(
            matches!(encode(&packet), Err(EncodeError::InvalidName { .. })),
            "block {name:?}"
        );
        let mut packet = sample_packet();
        packet.body[0].fields[0].0 = name.to_owned();
        assert!(
            matches!(encode(&packet), Err(EncodeError::InvalidName { .. })),
            "field {name:?}"
        );
    }
}

#[test]
fn block_get_returns_first_and_count_counts_all() {
    let block = Block::new("A").with("F", "1").with("F", "2");
    assert_eq!(block.get("F"), Some("1"));
    assert_eq!(block.get("G"), None);
    assert_eq!(block.count("F"), 2);
}

#[test]
fn clip_keeps_short_text_and_cuts_long_text_on_a_character_boundary() {
    assert_eq!(clip("abc"), "abc");
    let long = "中".repeat(MAX_ERROR_TEXT_CHARS + 5);
    let clipped = clip(&long);
    assert_eq!(clipped.chars().count(), MAX_ERROR_TEXT_CHARS + 1);
    assert!(clipped.ends_with('…'));
}
