//! Snapshot fixtures of the `cn-xml` family under `tests/data/cn-xml/`.
//!
//! The well-formed fixtures are the committed output of `encode` for the
//! messages built here: a change in rendering shows up as a diff to review.
//! The broken fixtures (truncated, not GB18030, with a DOCTYPE) are derived
//! from them the same way, so they stay in step with the format. Run with
//! `UPDATE_FIXTURES=1` to rewrite the files after an intended change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use formats::cn_xml::messages::*;
use formats::cn_xml::{decode, encode, DecodeError, Limits, Packet};

const LOGIN: &str = "DEMO01";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cn-xml")
        .join(name)
}

/// Compares `actual` with the committed file, or rewrites the file when
/// `UPDATE_FIXTURES=1`. Returns the committed bytes.
fn snapshot(name: &str, actual: &[u8]) -> Vec<u8> {
    let path = fixture_path(name);
    if std::env::var("UPDATE_FIXTURES").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read fixture {}: {error}; run with UPDATE_FIXTURES=1 to create it",
            path.display()
        )
    });
    assert!(
        committed == actual,
        "fixture {name} differs from what the code produces; if the change is intended, \
         rerun with UPDATE_FIXTURES=1 and review the diff"
    );
    committed
}

fn accounts() -> Vec<AccountRecord> {
    vec![
        AccountRecord {
            acc_no: "755900012310001".to_owned(),
            name: "深圳前海示例科技有限公司".to_owned(),
            currency_code: "10".to_owned(),
            branch: "招商银行深圳分行营业部".to_owned(),
            status: "A".to_owned(),
        },
        AccountRecord {
            acc_no: "755900012310002".to_owned(),
            name: "深圳前海示例科技有限公司（美元户）".to_owned(),
            currency_code: "32".to_owned(),
            branch: "招商银行深圳分行营业部".to_owned(),
            status: "A".to_owned(),
        },
        AccountRecord {
            acc_no: "755900012310003".to_owned(),
            name: "张三 & 李四 <合伙>".to_owned(),
            currency_code: "10".to_owned(),
            branch: "招商银行上海分行".to_owned(),
            status: "C".to_owned(),
        },
    ]
}

fn balance_items() -> Vec<BalanceQueryItem> {
    vec![
        BalanceQueryItem {
            acc_no: "755900012310001".to_owned(),
            currency_code: None,
        },
        BalanceQueryItem {
            acc_no: "755900012310002".to_owned(),
            currency_code: Some("32".to_owned()),
        },
        BalanceQueryItem {
            acc_no: "755900099999999".to_owned(),
            currency_code: None,
        },
    ]
}

fn balances() -> Vec<BalanceRecord> {
    vec![
        BalanceRecord {
            acc_no: "755900012310001".to_owned(),
            currency_code: "10".to_owned(),
            booked: "-80.00".to_owned(),
            available: "1234.5000".to_owned(),
            date: "20240131".to_owned(),
            time: "153000".to_owned(),
            rec_status: REC_SUCCESS.to_owned(),
            rec_msg: String::new(),
        },
        BalanceRecord {
            acc_no: "755900012310002".to_owned(),
            currency_code: "32".to_owned(),
            booked: "12345.67".to_owned(),
            available: "12345.67".to_owned(),
            date: "20240131".to_owned(),
            time: "153000".to_owned(),
            rec_status: REC_SUCCESS.to_owned(),
            rec_msg: String::new(),
        },
        BalanceRecord {
            acc_no: "755900099999999".to_owned(),
            currency_code: String::new(),
            booked: String::new(),
            available: String::new(),
            date: String::new(),
            time: String::new(),
            rec_status: REC_FAILED.to_owned(),
            rec_msg: "账户不存在或无权查询".to_owned(),
        },
    ]
}

fn history_query(cont_key: &str) -> HistoryQuery {
    HistoryQuery {
        acc_no: "755900012310001".to_owned(),
        currency_code: "10".to_owned(),
        from: "20260820".to_owned(),
        to: "20261127".to_owned(),
        cont_key: cont_key.to_owned(),
    }
}

/// A page as a padding front end writes it: four decimals, one identical
/// pair (same counterparty, amount and text, different serials), one entry
/// without serial or counterparty (interest), one pending entry.
fn history_records() -> Vec<HistoryRecord> {
    let salary = |serial: &str, balance: &str| HistoryRecord {
        serial: serial.to_owned(),
        booking_date: "20261127".to_owned(),
        value_date: "20261127".to_owned(),
        direction: DIRECTION_DEBIT.to_owned(),
        amount: "8500.0000".to_owned(),
        status: ENTRY_BOOKED.to_owned(),
        balance: balance.to_owned(),
        ctp_name: "张伟".to_owned(),
        ctp_account: "6222021001112223334".to_owned(),
        ctp_bank: "中国工商银行上海分行".to_owned(),
        narrative: "工资".to_owned(),
        e2e_ref: String::new(),
    };
    vec![
        HistoryRecord {
            serial: "000001".to_owned(),
            booking_date: "20261127".to_owned(),
            value_date: "20261126".to_owned(),
            direction: DIRECTION_CREDIT.to_owned(),
            amount: "128000.5000".to_owned(),
            status: ENTRY_BOOKED.to_owned(),
            balance: "1128000.5000".to_owned(),
            ctp_name: "上海市恒达贸易有限公司".to_owned(),
            ctp_account: "310066771234567".to_owned(),
            ctp_bank: "中国建设银行上海浦东支行".to_owned(),
            narrative: "货款 合同号HT-2026/118 & 运费".to_owned(),
            e2e_ref: "E2026112700012345".to_owned(),
        },
        salary("000002", "1119500.5000"),
        salary("000003", "1111000.5000"),
        HistoryRecord {
            serial: String::new(),
            booking_date: "20261127".to_owned(),
            value_date: "20261127".to_owned(),
            direction: DIRECTION_CREDIT.to_owned(),
            amount: "12.3400".to_owned(),
            status: ENTRY_BOOKED.to_owned(),
            balance: "1111012.8400".to_owned(),
            ctp_name: String::new(),
            ctp_account: String::new(),
            ctp_bank: String::new(),
            narrative: "利息".to_owned(),
            e2e_ref: String::new(),
        },
        HistoryRecord {
            serial: "000005".to_owned(),
            booking_date: "20261127".to_owned(),
            value_date: "20261127".to_owned(),
            direction: DIRECTION_DEBIT.to_owned(),
            amount: "3000.0000".to_owned(),
            status: ENTRY_PENDING.to_owned(),
            balance: String::new(),
            ctp_name: "深圳市鼎盛物流股份有限公司".to_owned(),
            ctp_account: "755912345678901".to_owned(),
            ctp_bank: "招商银行深圳分行".to_owned(),
            narrative: "服务费".to_owned(),
            e2e_ref: String::new(),
        },
    ]
}

fn day_balance_query() -> DayBalanceQuery {
    DayBalanceQuery {
        acc_no: "755900012310001".to_owned(),
        currency_code: "10".to_owned(),
        from: "20261126".to_owned(),
        to: "20261127".to_owned(),
    }
}

fn day_balances() -> Vec<DayBalanceRecord> {
    vec![
        DayBalanceRecord {
            date: "20261126".to_owned(),
            opening: "-80.0000".to_owned(),
            closing: "1000000.0000".to_owned(),
        },
        DayBalanceRecord {
            date: "20261127".to_owned(),
            opening: "1000000.0000".to_owned(),
            closing: "1111012.8400".to_owned(),
        },
    ]
}

fn encoded(packet: &Packet) -> Vec<u8> {
    encode(packet).unwrap()
}

fn decoded(bytes: &[u8]) -> Packet {
    decode(bytes, &Limits::default()).unwrap()
}

#[test]
fn list_accounts_request_fixture() {
    let packet = list_accounts_request(LOGIN, "R20240131000001");
    let bytes = snapshot("list_accounts_request.xml", &encoded(&packet));
    let back = decoded(&bytes);
    assert_eq!(back, packet);
    assert_eq!(back.head.func, FUNC_LIST_ACCOUNTS);
}

#[test]
fn list_accounts_response_fixture() {
    let packet = list_accounts_response("R20240131000001", RET_OK, "", &accounts());
    let bytes = snapshot("list_accounts_response.xml", &encoded(&packet));
    let response = parse_list_accounts(&decoded(&bytes)).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.serial, "R20240131000001");
    assert_eq!(response.records, accounts());
}

#[test]
fn balance_request_fixture() {
    let packet = balance_request(LOGIN, "R20240131000002", &balance_items());
    let bytes = snapshot("balance_request.xml", &encoded(&packet));
    assert_eq!(
        parse_balance_request(&decoded(&bytes)).unwrap(),
        balance_items()
    );
}

#[test]
fn balance_response_fixture() {
    let packet = balance_response("R20240131000002", RET_OK, "", &balances());
    let bytes = snapshot("balance_response.xml", &encoded(&packet));
    let response = parse_balances(&decoded(&bytes)).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.records, balances());
}

#[test]
fn history_request_fixture() {
    let packet = history_request(
        LOGIN,
        "R20261128000005",
        &history_query("K202611270000000042"),
    );
    let bytes = snapshot("history_request.xml", &encoded(&packet));
    assert_eq!(
        parse_history_request(&decoded(&bytes)).unwrap(),
        history_query("K202611270000000042")
    );
}

#[test]
fn history_response_fixture() {
    let packet = history_response(
        "R20261128000005",
        RET_OK,
        "",
        &history_records(),
        "K202611270000000047",
    );
    let bytes = snapshot("history_response.xml", &encoded(&packet));
    // The Chinese names travel as GBK: two bytes per character, not UTF-8.
    let (zhang_wei_gbk, _, _) = encoding_rs::GBK.encode("张伟");
    assert!(bytes
        .windows(zhang_wei_gbk.len())
        .any(|w| w == &*zhang_wei_gbk));
    assert!(!bytes.windows("张伟".len()).any(|w| w == "张伟".as_bytes()));
    let page = parse_history(&decoded(&bytes)).unwrap();
    assert!(page.response.is_ok());
    assert_eq!(page.response.records, history_records());
    assert_eq!(page.cont_key, "K202611270000000047");
}

#[test]
fn history_refusal_fixture() {
    let mut packet = history_response("R20261128000006", RET_BAD_REQUEST, "账户不存在", &[], "");
    // A refusal as front machines send it: no blocks at all.
    packet.body.clear();
    let bytes = snapshot("history_refused.xml", &encoded(&packet));
    let page = parse_history(&decoded(&bytes)).unwrap();
    assert_eq!(page.response.ret_code, RET_BAD_REQUEST);
    assert_eq!(page.response.ret_msg, "账户不存在");
    assert!(page.response.records.is_empty());
    assert_eq!(page.cont_key, "");
}

#[test]
fn day_balance_request_fixture() {
    let packet = day_balance_request(LOGIN, "R20261128000007", &day_balance_query());
    let bytes = snapshot("day_balance_request.xml", &encoded(&packet));
    assert_eq!(
        parse_day_balance_request(&decoded(&bytes)).unwrap(),
        day_balance_query()
    );
}

#[test]
fn day_balance_response_fixture() {
    let packet = day_balance_response("R20261128000007", RET_OK, "", &day_balances());
    let bytes = snapshot("day_balance_response.xml", &encoded(&packet));
    let response = parse_day_balances(&decoded(&bytes)).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.records, day_balances());
}

#[test]
fn truncated_response_fixture_is_refused_naming_the_open_field() {
    // A torn response: the connection dropped in the middle of an amount.
    let full = encoded(&balance_response(
        "R20240131000002",
        RET_OK,
        "",
        &balances(),
    ));
    let marker = b"<AVLBAL>";
    let cut = full
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap()
        + marker.len()
        + 3;
    let bytes = snapshot("truncated.xml", &full[..cut]);
    match decode(&bytes, &Limits::default()) {
        Err(DecodeError::Structure { path, problem, .. }) => {
            assert_eq!(path, "BODY/BALANCE[1]/AVLBAL");
            assert!(problem.contains("not closed"), "{problem}");
        }
        other => panic!("expected a structure error, got {other:?}"),
    }
}

#[test]
fn utf8_response_fixture_is_refused_as_not_gb18030() {
    // A front machine misconfigured to answer in UTF-8 while declaring GBK.
    // The account name has an odd number of three-byte characters, which
    // leaves a GB18030 lead byte in front of `<`.
    let gbk = encoded(&list_accounts_response(
        "R20240131000003",
        RET_OK,
        "",
        &[AccountRecord {
            acc_no: "755900012310001".to_owned(),
            name: "张三丰".to_owned(),
            currency_code: "10".to_owned(),
            branch: "BRANCH".to_owned(),
            status: "A".to_owned(),
        }],
    ));
    let text = encoding_rs::GBK
        .decode_without_bom_handling(&gbk)
        .0
        .into_owned();
    let bytes = snapshot("not_gb18030.xml", text.as_bytes());
    let name_offset = text.find("张三丰").unwrap();
    assert_eq!(
        decode(&bytes, &Limits::default()),
        Err(DecodeError::Encoding {
            offset: name_offset + 8
        })
    );
}

#[test]
fn doctype_fixture_is_refused() {
    // An entity-expansion attempt ("billion laughs") in a request.
    let text = String::from_utf8(encoded(&list_accounts_request(
        "LOGIN_PLACEHOLDER",
        "R20240131000004",
    )))
    .unwrap()
    .replace(
        "?>\n",
        "?>\n<!DOCTYPE CNXML [\n  <!ENTITY lol \"lol\">\n  <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n",
    )
    .replace("LOGIN_PLACEHOLDER", "&lol2;");
    let bytes = snapshot("doctype.xml", text.as_bytes());
    assert!(matches!(
        decode(&bytes, &Limits::default()),
        Err(DecodeError::Forbidden {
            what: "a DOCTYPE declaration",
            ..
        })
    ));
}

fn payment_request() -> PaymentRequest {
    PaymentRequest {
        reference: "BDAC0YTTT9A5QUA8YJ0TCUUWK9KSCE".to_owned(),
        debtor_account: "755900012310001".to_owned(),
        currency_code: "10".to_owned(),
        amount: "1234.50".to_owned(),
        creditor_account: "6222020000001234".to_owned(),
        creditor_name: "上海示例贸易有限公司".to_owned(),
        creditor_bank_code: "102290000001".to_owned(),
        creditor_bic: String::new(),
        creditor_bank_name: "中国工商银行上海分行".to_owned(),
        creditor_type: CRTTYP_CORPORATE.to_owned(),
        remittance: "货款 2026-11".to_owned(),
        purpose: String::new(),
        urgent: URGENT_NO.to_owned(),
        execution_date: "20261128".to_owned(),
    }
}

fn payment_results() -> Vec<PaymentResult> {
    vec![
        PaymentResult {
            reference: "BDAC0YTTT9A5QUA8YJ0TCUUWK9KSCE".to_owned(),
            request_status: REQSTS_FINISHED.to_owned(),
            result_flag: RTNFLG_SUCCESS.to_owned(),
            error_code: String::new(),
            error_text: String::new(),
            bank_ref: "CMB20261128000123".to_owned(),
        },
        PaymentResult {
            reference: "BDAC0YTTT9A5QUA8YJ0TCUUWK9ZZZZ".to_owned(),
            request_status: REQSTS_FINISHED.to_owned(),
            result_flag: RTNFLG_FAILED.to_owned(),
            error_code: "NAME_MISMATCH".to_owned(),
            error_text: "户名不符".to_owned(),
            bank_ref: String::new(),
        },
        PaymentResult::not_found("BDAC0YTTT9A5QUA8YJ0TCUUWK9NONE", "无此业务参考号"),
    ]
}

#[test]
fn submit_payment_request_fixture() {
    let packet = submit_payment_request(LOGIN, "R20261128000009", &payment_request());
    let bytes = snapshot("submit_payment_request.xml", &encoded(&packet));
    assert_eq!(
        parse_submit_payment_request(&decoded(&bytes)).unwrap(),
        payment_request()
    );
}

#[test]
fn submit_payment_response_fixture() {
    let results = payment_results();
    let packet = submit_payment_response("R20261128000009", RET_OK, "", Some(&results[0]));
    let bytes = snapshot("submit_payment_response.xml", &encoded(&packet));
    let response = parse_submit_payment(&decoded(&bytes)).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.records, vec![results[0].clone()]);
}

#[test]
fn query_payment_fixtures() {
    let refs: Vec<String> = payment_results()
        .iter()
        .map(|r| r.reference.clone())
        .collect();
    let packet = query_payment_request(LOGIN, "R20261128000010", &refs);
    let bytes = snapshot("query_payment_request.xml", &encoded(&packet));
    assert_eq!(parse_query_payment_request(&decoded(&bytes)).unwrap(), refs);
    let packet = query_payment_response("R20261128000010", RET_OK, "", &payment_results());
    let bytes = snapshot("query_payment_response.xml", &encoded(&packet));
    let response = parse_query_payment(&decoded(&bytes)).unwrap();
    assert_eq!(response.records, payment_results());
    assert!(response.records[2].is_not_found());
}

fn batch_request(function: BatchFunction) -> BatchRequest {
    let item = |reference: &str, amount: &str, name: &str, account: &str| BatchItemRequest {
        reference: reference.to_owned(),
        amount: amount.to_owned(),
        creditor_account: account.to_owned(),
        creditor_name: name.to_owned(),
        creditor_bank_code: String::new(),
        creditor_bic: String::new(),
        creditor_bank_name: String::new(),
        creditor_type: "P".to_owned(),
        remittance: "十一月工资".to_owned(),
        purpose: String::new(),
    };
    let mut supplier = item(
        "BDAC0YTTT9A5QUA8YJ0TCUUWKI0001",
        "120000.00",
        "上海某某贸易有限公司",
        "31001234567890",
    );
    supplier.creditor_type = "C".to_owned();
    supplier.creditor_bank_code = "102290000011".to_owned();
    supplier.creditor_bank_name = "中国工商银行上海分行".to_owned();
    supplier.remittance = "货款 & 运费".to_owned();
    supplier.purpose = "合同号<2026-118>".to_owned();
    let items = match function {
        BatchFunction::Supplier => vec![
            supplier,
            item(
                "BDAC0YTTT9A5QUA8YJ0TCUUWKI0002",
                "0.01",
                "错名示例",
                "000123",
            ),
        ],
        BatchFunction::Payroll => vec![
            item(
                "BDAC0YTTT9A5QUA8YJ0TCUUWKI0011",
                "8500.00",
                "张伟",
                "6222020200112233",
            ),
            item(
                "BDAC0YTTT9A5QUA8YJ0TCUUWKI0012",
                "9200.50",
                "李娜",
                "6222020200114455",
            ),
        ],
    };
    BatchRequest {
        function,
        reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKC0001".to_owned(),
        batch_reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKB0001".to_owned(),
        debtor_account: "755900012310001".to_owned(),
        currency_code: "10".to_owned(),
        execution_date: "20261127".to_owned(),
        item_count: "2".to_owned(),
        control_sum: match function {
            BatchFunction::Supplier => "120000.01",
            BatchFunction::Payroll => "17700.50",
        }
        .to_owned(),
        items,
    }
}

fn batch_summary() -> BatchSummary {
    BatchSummary {
        reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKC0001".to_owned(),
        batch_reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKB0001".to_owned(),
        request_status: REQSTS_FINISHED.to_owned(),
        finished: FINFLG_YES.to_owned(),
        item_count: "2".to_owned(),
        success_count: "1".to_owned(),
        failed_count: "1".to_owned(),
        error_code: String::new(),
        error_text: String::new(),
        bank_ref: "SIMB00000001".to_owned(),
    }
}

#[test]
fn submit_batch_fixtures() {
    for (function, name) in [
        (BatchFunction::Supplier, "submit_batch_request.xml"),
        (BatchFunction::Payroll, "submit_payroll_request.xml"),
    ] {
        let packet = submit_batch_request(LOGIN, "R20261128000011", &batch_request(function));
        let bytes = snapshot(name, &encoded(&packet));
        assert_eq!(
            parse_submit_batch_request(&decoded(&bytes)).unwrap(),
            batch_request(function)
        );
    }
    let packet = submit_batch_response(
        BatchFunction::Supplier,
        "R20261128000011",
        RET_OK,
        "",
        Some(&batch_summary()),
    );
    let bytes = snapshot("submit_batch_response.xml", &encoded(&packet));
    let response = parse_submit_batch(BatchFunction::Supplier, &decoded(&bytes)).unwrap();
    assert!(response.is_ok());
    assert_eq!(response.summary, Some(batch_summary()));
}

#[test]
fn query_batch_fixtures() {
    let reference = "BDAC0YTTT9A5QUA8YJ0TCUUWKC0001";
    let packet = query_batch_request(LOGIN, "R20261128000012", reference);
    let bytes = snapshot("query_batch_request.xml", &encoded(&packet));
    assert_eq!(
        parse_query_batch_request(&decoded(&bytes)).unwrap(),
        reference
    );
    let items = vec![
        PaymentResult {
            reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKI0001".to_owned(),
            request_status: REQSTS_FINISHED.to_owned(),
            result_flag: RTNFLG_SUCCESS.to_owned(),
            error_code: String::new(),
            error_text: String::new(),
            bank_ref: "SIM000000000001".to_owned(),
        },
        PaymentResult {
            reference: "BDAC0YTTT9A5QUA8YJ0TCUUWKI0002".to_owned(),
            request_status: REQSTS_FINISHED.to_owned(),
            result_flag: RTNFLG_REJECTED.to_owned(),
            error_code: "INVALID_ACCOUNT".to_owned(),
            error_text: "收款账号不存在".to_owned(),
            bank_ref: "SIM000000000002".to_owned(),
        },
    ];
    let packet = query_batch_response(
        "R20261128000012",
        RET_OK,
        "",
        Some(&batch_summary()),
        &items,
    );
    let bytes = snapshot("query_batch_response.xml", &encoded(&packet));
    let response = parse_query_batch(&decoded(&bytes)).unwrap();
    assert_eq!(response.summary, Some(batch_summary()));
    assert_eq!(response.items, items);
}
