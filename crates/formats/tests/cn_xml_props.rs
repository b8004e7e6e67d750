//! Properties of the `cn-xml` codec: every encodable packet survives
//! encode→decode unchanged, a character GBK cannot carry is an error (never
//! a character reference), decode never panics on arbitrary or damaged
//! bytes, and the typed history and batch messages survive
//! build→encode→decode→parse with any text in their fields. The same decode→encode→decode invariant is fuzzed in
//! `fuzz/fuzz_targets/cn_xml_decode.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use formats::cn_xml::messages::{
    day_balance_response, history_request, history_response, parse_day_balances, parse_history,
    parse_history_request, parse_query_batch, parse_query_batch_request, parse_submit_batch,
    parse_submit_batch_request, query_batch_request, query_batch_response, submit_batch_request,
    submit_batch_response, BatchFunction, BatchItemRequest, BatchRequest, BatchSummary,
    DayBalanceRecord, HistoryQuery, HistoryRecord, PaymentResult, RET_OK,
};
use formats::cn_xml::{decode, encode, Block, DecodeError, EncodeError, Head, Limits, Packet};
use proptest::prelude::*;

const CHINESE_SAMPLE: &str = "中国招商银行深圳分行张三有限公司账户余额（）：，。";

fn name() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,11}"
}

fn text_char() -> impl Strategy<Value = char> {
    let sample: Vec<char> = CHINESE_SAMPLE.chars().collect();
    prop_oneof![
        4 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec!['<', '>', '&', '\'', '"', ' ', ' ', '\t', '\n', '\r']),
        2 => prop::sample::select(sample),
        2 => prop::char::range('\u{4E00}', '\u{9FA5}'),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..24).prop_map(|chars| chars.into_iter().collect())
}

fn block() -> impl Strategy<Value = Block> {
    (name(), prop::collection::vec((name(), text()), 0..6))
        .prop_map(|(name, fields)| Block { name, fields })
}

fn packet() -> impl Strategy<Value = Packet> {
    let head = (
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(
            |(func, login, password, data_type, serial, ret_code, ret_msg)| Head {
                func,
                login,
                password,
                data_type,
                serial,
                ret_code,
                ret_msg,
            },
        );
    (head, prop::collection::vec(block(), 0..6)).prop_map(|(head, body)| Packet { head, body })
}

/// Characters GBK has no bytes for: outside the BMP, Latin capital sharp s,
/// the private-use code point the WHATWG GBK encoder refuses, Hangul.
fn unencodable() -> impl Strategy<Value = char> {
    prop::sample::select(vec!['😀', '𠀀', 'ẞ', '\u{E5E5}', '한'])
}

/// Decoding a decoded packet's encoding must give the packet back. The
/// byte limit is lifted for the second decode because escaping can make
/// the rendering longer than the input was.
fn assert_stable(first: &Packet) {
    match encode(first) {
        Ok(bytes) => {
            let relaxed = Limits {
                max_bytes: bytes.len().max(Limits::default().max_bytes),
                ..Limits::default()
            };
            assert_eq!(&decode(&bytes, &relaxed).unwrap(), first);
        }
        // Decoding accepts all of GB18030; GBK output cannot carry all of it.
        Err(EncodeError::Unencodable { .. }) => {}
        Err(other) => panic!("decoded packet could not be encoded: {other}"),
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index, prop::sample::Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Damage::Remove(a, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match damage {
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Damage::Flip(at, value) => {
            let at = at.index(bytes.len());
            bytes[at] ^= value | 1;
        }
        Damage::Insert(at, value) => {
            let at = at.index(bytes.len() + 1);
            bytes.insert(at, *value);
        }
        Damage::Remove(a, b) => {
            let (a, b) = (a.index(bytes.len()), b.index(bytes.len()));
            bytes.drain(a.min(b)..a.max(b));
        }
    }
}

fn history_record() -> impl Strategy<Value = HistoryRecord> {
    (
        (text(), text(), text(), text(), text(), text()),
        (text(), text(), text(), text(), text(), text()),
    )
        .prop_map(
            |(
                (serial, booking_date, value_date, direction, amount, status),
                (balance, ctp_name, ctp_account, ctp_bank, narrative, e2e_ref),
            )| HistoryRecord {
                serial,
                booking_date,
                value_date,
                direction,
                amount,
                status,
                balance,
                ctp_name,
                ctp_account,
                ctp_bank,
                narrative,
                e2e_ref,
            },
        )
}

/// Text that is never empty: required batch fields must carry something
/// (the parsers read an absent optional field as empty, so only the
/// builders' leaving out of empty optional fields is exercised by `text`).
fn nonempty_text() -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 1..24).prop_map(|chars| chars.into_iter().collect())
}

fn batch_item() -> impl Strategy<Value = BatchItemRequest> {
    (
        (
            nonempty_text(),
            nonempty_text(),
            nonempty_text(),
            nonempty_text(),
        ),
        (text(), text(), text()),
        (nonempty_text(), nonempty_text(), text()),
    )
        .prop_map(
            |(
                (reference, amount, creditor_account, creditor_name),
                (creditor_bank_code, creditor_bic, creditor_bank_name),
                (creditor_type, remittance, purpose),
            )| BatchItemRequest {
                reference,
                amount,
                creditor_account,
                creditor_name,
                creditor_bank_code,
                creditor_bic,
                creditor_bank_name,
                creditor_type,
                remittance,
                purpose,
            },
        )
}

fn batch_function() -> impl Strategy<Value = BatchFunction> {
    prop::sample::select(vec![BatchFunction::Supplier, BatchFunction::Payroll])
}

fn batch_summary() -> impl Strategy<Value = BatchSummary> {
    (
        (nonempty_text(), text(), nonempty_text(), text(), text()),
        (text(), text(), text(), text(), text()),
    )
        .prop_map(
            |(
                (reference, batch_reference, request_status, finished, item_count),
                (success_count, failed_count, error_code, error_text, bank_ref),
            )| BatchSummary {
                reference,
                batch_reference,
                request_status,
                finished,
                item_count,
                success_count,
                failed_count,
                error_code,
                error_text,
                bank_ref,
            },
        )
}

fn item_result() -> impl Strategy<Value = PaymentResult> {
    (
        nonempty_text(),
        nonempty_text(),
        text(),
        text(),
        text(),
        text(),
    )
        .prop_map(
            |(reference, request_status, result_flag, error_code, error_text, bank_ref)| {
                PaymentResult {
                    reference,
                    request_status,
                    result_flag,
                    error_code,
                    error_text,
                    bank_ref,
                }
            },
        )
}

fn wire_trip(packet: &Packet) -> Packet {
    decode(&encode(packet).unwrap(), &Limits::default()).unwrap()
}

proptest! {
    #[test]
    fn history_pages_survive_the_wire(
        records in prop::collection::vec(history_record(), 0..8),
        serial in text(),
        cont_key in text(),
    ) {
        let packet = history_response(&serial, RET_OK, "", &records, &cont_key);
        let page = parse_history(&wire_trip(&packet)).unwrap();
        prop_assert_eq!(page.response.records, records);
        prop_assert_eq!(page.response.serial, serial);
        prop_assert_eq!(page.cont_key, cont_key);
    }

    #[test]
    fn history_requests_survive_the_wire(
        (acc_no, currency_code, from, to, cont_key) in (text(), text(), text(), text(), text()),
    ) {
        let query = HistoryQuery { acc_no, currency_code, from, to, cont_key };
        let packet = history_request("DEMO01", "R1", &query);
        prop_assert_eq!(parse_history_request(&wire_trip(&packet)).unwrap(), query);
    }

    #[test]
    fn day_balances_survive_the_wire(
        days in prop::collection::vec((text(), text(), text()), 0..8),
    ) {
        let records: Vec<DayBalanceRecord> = days
            .into_iter()
            .map(|(date, opening, closing)| DayBalanceRecord { date, opening, closing })
            .collect();
        let packet = day_balance_response("R1", RET_OK, "", &records);
        prop_assert_eq!(parse_day_balances(&wire_trip(&packet)).unwrap().records, records);
    }

    #[test]
    fn batch_submissions_survive_the_wire(
        function in batch_function(),
        header in prop::collection::vec(nonempty_text(), 7),
        items in prop::collection::vec(batch_item(), 1..6),
    ) {
        let batch = BatchRequest {
            function,
            reference: header[0].clone(),
            batch_reference: header[1].clone(),
            debtor_account: header[2].clone(),
            currency_code: header[3].clone(),
            execution_date: header[4].clone(),
            item_count: header[5].clone(),
            control_sum: header[6].clone(),
            items,
        };
        let packet = submit_batch_request("DEMO01", "R1", &batch);
        prop_assert_eq!(parse_submit_batch_request(&wire_trip(&packet)).unwrap(), batch);
    }

    #[test]
    fn batch_submit_answers_survive_the_wire(
        function in batch_function(),
        summary in prop::option::of(batch_summary()),
        (serial, ret_code, ret_msg) in (text(), text(), text()),
    ) {
        let packet = submit_batch_response(function, &serial, &ret_code, &ret_msg, summary.as_ref());
        let parsed = parse_submit_batch(function, &wire_trip(&packet)).unwrap();
        prop_assert_eq!(parsed.summary, summary);
        prop_assert_eq!(parsed.ret_code, ret_code);
        prop_assert_eq!(parsed.ret_msg, ret_msg);
        prop_assert_eq!(parsed.serial, serial);
    }

    #[test]
    fn batch_queries_survive_the_wire(
        reference in text(),
        summary in batch_summary(),
        items in prop::collection::vec(item_result(), 0..8),
    ) {
        let request = query_batch_request("DEMO01", "Q1", &reference);
        prop_assert_eq!(parse_query_batch_request(&wire_trip(&request)).unwrap(), reference);
        let packet = query_batch_response("Q1", RET_OK, "", Some(&summary), &items);
        let parsed = parse_query_batch(&wire_trip(&packet)).unwrap();
        prop_assert_eq!(parsed.summary, Some(summary));
        prop_assert_eq!(parsed.items, items);
    }

    #[test]
    fn encodable_packets_survive_encode_then_decode(packet in packet()) {
        let bytes = encode(&packet).unwrap();
        prop_assert_eq!(decode(&bytes, &Limits::default()).unwrap(), packet);
    }

    #[test]
    fn unencodable_character_is_an_error_not_a_reference(
        mut packet in packet(),
        ch in unencodable(),
        block_choice in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
    ) {
        // Put the character into a field if there is one, else into RETMSG.
        let fields: Vec<(usize, usize)> = packet
            .body
            .iter()
            .enumerate()
            .flat_map(|(b, block)| (0..block.fields.len()).map(move |f| (b, f)))
            .collect();
        let target = if fields.is_empty() {
            packet.head.ret_msg.get_or_insert_with(String::new)
        } else {
            let (b, f) = fields[block_choice.index(fields.len())];
            &mut packet.body[b].fields[f].1
        };
        let chars: Vec<char> = target.chars().collect();
        let at = position.index(chars.len() + 1);
        *target = chars[..at].iter().chain([ch].iter()).chain(chars[at..].iter()).collect();

        match encode(&packet) {
            Err(EncodeError::Unencodable { ch: reported, path }) => {
                prop_assert_eq!(reported, ch);
                prop_assert!(path.starts_with("BODY/") || path == "HEAD/RETMSG", "{}", path);
            }
            other => prop_assert!(false, "expected Unencodable, got {:?}", other),
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(packet) = decode(&bytes, &Limits::default()) {
            assert_stable(&packet);
        }
    }

    #[test]
    fn decode_never_panics_on_damaged_packets(
        packet in packet(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = encode(&packet).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        if let Ok(decoded) = decode(&bytes, &Limits::default()) {
            assert_stable(&decoded);
        }
    }
}

#[test]
fn replacing_encoder_would_have_written_a_reference() {
    // Documents why `encode` uses the non-replacing API: encoding_rs's
    // convenience encoder silently substitutes `&#128512;`.
    let (bytes, _, had_errors) = encoding_rs::GBK.encode("😀");
    assert!(had_errors);
    assert_eq!(&*bytes, b"&#128512;");
    let packet = Packet {
        head: Head {
            func: "F".to_owned(),
            serial: "😀".to_owned(),
            ..Head::default()
        },
        body: Vec::new(),
    };
    assert!(matches!(
        encode(&packet),
        Err(EncodeError::Unencodable { ch: '😀', .. })
    ));
}

#[test]
fn gb18030_only_characters_decode_but_do_not_re_encode() {
    // Four-byte GB18030 for U+1F600: valid on the wire, not GBK.
    let (emoji, _, had_errors) = encoding_rs::GB18030.encode("😀");
    assert!(!had_errors);
    let mut bytes = b"<CNXML><HEAD><FUNC>F</FUNC><SERIAL>".to_vec();
    bytes.extend_from_slice(&emoji);
    bytes.extend_from_slice(b"</SERIAL></HEAD></CNXML>");
    let packet = decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(packet.head.serial, "😀");
    assert!(matches!(
        encode(&packet),
        Err(EncodeError::Unencodable { .. })
    ));
    // Cut in the middle of the four-byte sequence: an encoding error there.
    let cut = bytes.len() - "</SERIAL></HEAD></CNXML>".len() - 2;
    assert!(matches!(
        decode(&bytes[..cut], &Limits::default()),
        Err(DecodeError::Encoding { .. })
    ));
}

#[test]
fn block_limit_packet_decodes_and_one_more_block_is_refused() {
    let limits = Limits::default();
    let block = Block::new("BALANCE")
        .with("ACCNO", "755900012310001")
        .with("ONLBAL", "-1234567890.12")
        .with("RECMSG", "深圳分行");
    let mut packet = Packet {
        head: Head {
            func: "QueryBalance".to_owned(),
            serial: "R1".to_owned(),
            ..Head::default()
        },
        body: vec![block.clone(); limits.max_blocks],
    };
    let bytes = encode(&packet).unwrap();
    assert!(bytes.len() < limits.max_bytes);
    assert_eq!(decode(&bytes, &limits).unwrap(), packet);

    packet.body.push(block);
    match decode(&encode(&packet).unwrap(), &limits) {
        Err(DecodeError::Limit { path, max, .. }) => {
            assert_eq!(path, format!("BODY/BALANCE[{}]", limits.max_blocks + 1));
            assert_eq!(max, limits.max_blocks);
        }
        other => panic!("expected the block limit, got {other:?}"),
    }
}
