//! Transaction details: `QueryHistory` (entries of one account over a date
//! range, with continuation paging) and `QueryDayBalance` (opening and
//! closing booked balance per day), as in docs/families/cn-xml.md.
//!
//! Like the rest of [`super`], everything stays the bank's text: directions
//! (`C`/`D`), statuses (`B`/`P`), amounts and dates are checked and
//! interpreted by the connector. What this module does enforce is the
//! packet's shape: one `QUERY` block in a request; in a history answer the
//! `TRANS` blocks, then exactly one `PAGE` block last; at most
//! [`MAX_HISTORY_RECORDS_PER_PAGE`] entries per page and
//! [`MAX_HISTORY_RANGE_DAYS`] day balances per answer.
//!
//! Layout: constants and record types, then `QueryHistory` (request,
//! response), then `QueryDayBalance`, then the one-`QUERY`-block reader both
//! requests share.

use super::{
    expect_function, records, request_head, response_head, Block, Fields, MessageError, Packet,
    Response, FIELD_ACCNO, FIELD_BALDAT, FIELD_CCYNBR, RET_OK,
};
use crate::cn_xml::clip;

/// Function code: entries of one account by booking date range, paged.
pub const FUNC_QUERY_HISTORY: &str = "QueryHistory";
/// Function code: opening and closing booked balance per day.
pub const FUNC_QUERY_DAY_BALANCE: &str = "QueryDayBalance";

/// The family's longest date range in one `QueryHistory` or
/// `QueryDayBalance` request, in days, both ends counted (`BGNDAT` =
/// `ENDDAT` is one day). Longer ranges are split by the caller.
pub const MAX_HISTORY_RANGE_DAYS: usize = 100;
/// The family's most `TRANS` blocks in one `QueryHistory` answer page.
pub const MAX_HISTORY_RECORDS_PER_PAGE: usize = 200;

/// `DIRECT`: money in.
pub const DIRECTION_CREDIT: &str = "C";
/// `DIRECT`: money out.
pub const DIRECTION_DEBIT: &str = "D";
/// `TRSSTS`: booked, in the balance, with a running balance.
pub const ENTRY_BOOKED: &str = "B";
/// `TRSSTS`: pending, not yet in the balance, no running balance.
pub const ENTRY_PENDING: &str = "P";

/// Block names.
pub const BLOCK_QUERY: &str = "QUERY";
pub const BLOCK_TRANS: &str = "TRANS";
pub const BLOCK_PAGE: &str = "PAGE";
pub const BLOCK_DAYBAL: &str = "DAYBAL";

/// Field names.
pub const FIELD_BGNDAT: &str = "BGNDAT";
pub const FIELD_ENDDAT: &str = "ENDDAT";
pub const FIELD_CONTKEY: &str = "CONTKEY";
pub const FIELD_TRSSEQ: &str = "TRSSEQ";
pub const FIELD_BOKDAT: &str = "BOKDAT";
pub const FIELD_VALDAT: &str = "VALDAT";
pub const FIELD_DIRECT: &str = "DIRECT";
pub const FIELD_TRSAMT: &str = "TRSAMT";
pub const FIELD_TRSSTS: &str = "TRSSTS";
pub const FIELD_BALAMT: &str = "BALAMT";
pub const FIELD_CTPNAM: &str = "CTPNAM";
pub const FIELD_CTPACC: &str = "CTPACC";
pub const FIELD_CTPBNK: &str = "CTPBNK";
pub const FIELD_NARTXT: &str = "NARTXT";
pub const FIELD_E2EREF: &str = "E2EREF";
pub const FIELD_OPNBAL: &str = "OPNBAL";
pub const FIELD_CLSBAL: &str = "CLSBAL";

/// The `QUERY` block of a `QueryHistory` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// `ACCNO`
    pub acc_no: String,
    /// `CCYNBR`
    pub currency_code: String,
    /// `BGNDAT`: first booking date, `yyyyMMdd`, inclusive.
    pub from: String,
    /// `ENDDAT`: last booking date, `yyyyMMdd`, inclusive.
    pub to: String,
    /// `CONTKEY`: empty for the first page, else the previous page's key.
    /// A request without the field reads as empty.
    pub cont_key: String,
}

/// The `QUERY` block of a `QueryDayBalance` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBalanceQuery {
    /// `ACCNO`
    pub acc_no: String,
    /// `CCYNBR`
    pub currency_code: String,
    /// `BGNDAT`: first day, `yyyyMMdd`, inclusive.
    pub from: String,
    /// `ENDDAT`: last day, `yyyyMMdd`, inclusive.
    pub to: String,
}

/// A `TRANS` record of a `QueryHistory` answer. Optional fields the bank
/// leaves out read as empty text, exactly like empty elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// `TRSSEQ`: the bank's serial, unique per account and booking date;
    /// may be empty (optional).
    pub serial: String,
    /// `BOKDAT`: booking date `yyyyMMdd` (required).
    pub booking_date: String,
    /// `VALDAT`: value date `yyyyMMdd` (required).
    pub value_date: String,
    /// `DIRECT`: [`DIRECTION_CREDIT`] or [`DIRECTION_DEBIT`] (required).
    pub direction: String,
    /// `TRSAMT`: positive decimal major units (required).
    pub amount: String,
    /// `TRSSTS`: [`ENTRY_BOOKED`] or [`ENTRY_PENDING`] (required).
    pub status: String,
    /// `BALAMT`: running booked balance after the entry; empty for pending
    /// entries and where the bank gives none (optional).
    pub balance: String,
    /// `CTPNAM`: counterparty name, often Chinese (optional).
    pub ctp_name: String,
    /// `CTPACC`: counterparty account (optional).
    pub ctp_account: String,
    /// `CTPBNK`: counterparty bank name (optional).
    pub ctp_bank: String,
    /// `NARTXT`: remittance text, 摘要/附言 (optional).
    pub narrative: String,
    /// `E2EREF`: end-to-end reference (optional).
    pub e2e_ref: String,
}

/// One page of a `QueryHistory` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub response: Response<HistoryRecord>,
    /// `PAGE/CONTKEY`: the key of the next page, empty on the last one (and
    /// in a refused answer without a `PAGE` block).
    pub cont_key: String,
}

/// A `DAYBAL` record of a `QueryDayBalance` answer; every field required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBalanceRecord {
    /// `BALDAT`: the day, `yyyyMMdd`.
    pub date: String,
    /// `OPNBAL`: booked balance at the start of the day.
    pub opening: String,
    /// `CLSBAL`: booked balance at the end of the day.
    pub closing: String,
}

// ---------------------------------------------------------------------------
// QueryHistory
// ---------------------------------------------------------------------------

/// A `QueryHistory` request for one page; `CONTKEY` is always written, empty
/// for the first page.
pub fn history_request(login: &str, serial: &str, query: &HistoryQuery) -> Packet {
    Packet {
        head: request_head(FUNC_QUERY_HISTORY, login, serial),
        body: vec![Block::new(BLOCK_QUERY)
            .with(FIELD_ACCNO, query.acc_no.as_str())
            .with(FIELD_CCYNBR, query.currency_code.as_str())
            .with(FIELD_BGNDAT, query.from.as_str())
            .with(FIELD_ENDDAT, query.to.as_str())
            .with(FIELD_CONTKEY, query.cont_key.as_str())],
    }
}

/// Reads a `QueryHistory` request: exactly one `QUERY` block with `ACCNO`,
/// `CCYNBR`, `BGNDAT`, `ENDDAT` and an optional `CONTKEY`. The range itself
/// is the bank's to check.
pub fn parse_history_request(p: &Packet) -> Result<HistoryQuery, MessageError> {
    expect_function(p, FUNC_QUERY_HISTORY)?;
    one_query(p, |fields| {
        Ok(HistoryQuery {
            acc_no: fields.required(FIELD_ACCNO)?,
            currency_code: fields.required(FIELD_CCYNBR)?,
            from: fields.required(FIELD_BGNDAT)?,
            to: fields.required(FIELD_ENDDAT)?,
            cont_key: fields.optional(FIELD_CONTKEY)?.unwrap_or_default(),
        })
    })
}

/// A `QueryHistory` answer page: one `TRANS` block per record, every field
/// written (empty ones included), then the `PAGE` block with `cont_key`.
///
/// The builder does not refuse more than [`MAX_HISTORY_RECORDS_PER_PAGE`]
/// records, so that tests can check the client side's refusal.
pub fn history_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    records: &[HistoryRecord],
    cont_key: &str,
) -> Packet {
    let mut body: Vec<Block> = records
        .iter()
        .map(|r| {
            Block::new(BLOCK_TRANS)
                .with(FIELD_TRSSEQ, r.serial.as_str())
                .with(FIELD_BOKDAT, r.booking_date.as_str())
                .with(FIELD_VALDAT, r.value_date.as_str())
                .with(FIELD_DIRECT, r.direction.as_str())
                .with(FIELD_TRSAMT, r.amount.as_str())
                .with(FIELD_TRSSTS, r.status.as_str())
                .with(FIELD_BALAMT, r.balance.as_str())
                .with(FIELD_CTPNAM, r.ctp_name.as_str())
                .with(FIELD_CTPACC, r.ctp_account.as_str())
                .with(FIELD_CTPBNK, r.ctp_bank.as_str())
                .with(FIELD_NARTXT, r.narrative.as_str())
                .with(FIELD_E2EREF, r.e2e_ref.as_str())
        })
        .collect();
    body.push(Block::new(BLOCK_PAGE).with(FIELD_CONTKEY, cont_key));
    Packet {
        head: response_head(FUNC_QUERY_HISTORY, serial, ret_code, ret_msg),
        body,
    }
}

/// Reads a `QueryHistory` answer page. `TRANS` blocks come first, at most
/// [`MAX_HISTORY_RECORDS_PER_PAGE`] of them, then exactly one `PAGE` block
/// with a `CONTKEY` field (possibly empty). A refused answer (`RETCODE` not
/// `0`) may leave the `PAGE` block out; its key then reads as empty.
///
/// In a `TRANS` block `BOKDAT`, `VALDAT`, `DIRECT`, `TRSAMT` and `TRSSTS`
/// are required; the other fields may be missing and read as empty.
pub fn parse_history(p: &Packet) -> Result<HistoryPage, MessageError> {
    expect_function(p, FUNC_QUERY_HISTORY)?;
    let ret_code = p
        .head
        .ret_code
        .clone()
        .ok_or_else(|| MessageError::MissingHeadField {
            field: "RETCODE".to_owned(),
        })?;
    let mut entries = Vec::new();
    let mut cont_key = None;
    for (ordinal, block) in p.body.iter().enumerate() {
        let index = ordinal + 1;
        if cont_key.is_some() {
            // Anything after PAGE, a second PAGE included, leaves it unclear
            // which records and which key belong to the page.
            return Err(MessageError::MisplacedPage { index });
        }
        match block.name.as_str() {
            BLOCK_TRANS => entries.push(history_record(&Fields { block, index })?),
            BLOCK_PAGE => {
                cont_key = Some(Fields { block, index }.required(FIELD_CONTKEY)?);
            }
            _ => {
                return Err(MessageError::UnexpectedBlock {
                    expected: BLOCK_TRANS.to_owned(),
                    found: clip(&block.name),
                    index,
                })
            }
        }
    }
    if entries.len() > MAX_HISTORY_RECORDS_PER_PAGE {
        return Err(MessageError::TooManyRecords {
            count: entries.len(),
            max: MAX_HISTORY_RECORDS_PER_PAGE,
        });
    }
    let cont_key = match cont_key {
        Some(key) => key,
        None if ret_code == RET_OK => return Err(MessageError::MissingPage),
        None => String::new(),
    };
    Ok(HistoryPage {
        response: Response {
            func: p.head.func.clone(),
            serial: p.head.serial.clone(),
            ret_code,
            ret_msg: p.head.ret_msg.clone().unwrap_or_default(),
            records: entries,
        },
        cont_key,
    })
}

fn history_record(fields: &Fields<'_>) -> Result<HistoryRecord, MessageError> {
    let optional = |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
    Ok(HistoryRecord {
        serial: optional(FIELD_TRSSEQ)?,
        booking_date: fields.required(FIELD_BOKDAT)?,
        value_date: fields.required(FIELD_VALDAT)?,
        direction: fields.required(FIELD_DIRECT)?,
        amount: fields.required(FIELD_TRSAMT)?,
        status: fields.required(FIELD_TRSSTS)?,
        balance: optional(FIELD_BALAMT)?,
        ctp_name: optional(FIELD_CTPNAM)?,
        ctp_account: optional(FIELD_CTPACC)?,
        ctp_bank: optional(FIELD_CTPBNK)?,
        narrative: optional(FIELD_NARTXT)?,
        e2e_ref: optional(FIELD_E2EREF)?,
    })
}

// ---------------------------------------------------------------------------
// QueryDayBalance
// ---------------------------------------------------------------------------

/// A `QueryDayBalance` request.
pub fn day_balance_request(login: &str, serial: &str, query: &DayBalanceQuery) -> Packet {
    Packet {
        head: request_head(FUNC_QUERY_DAY_BALANCE, login, serial),
        body: vec![Block::new(BLOCK_QUERY)
            .with(FIELD_ACCNO, query.acc_no.as_str())
            .with(FIELD_CCYNBR, query.currency_code.as_str())
            .with(FIELD_BGNDAT, query.from.as_str())
            .with(FIELD_ENDDAT, query.to.as_str())],
    }
}

/// Reads a `QueryDayBalance` request: exactly one `QUERY` block with
/// `ACCNO`, `CCYNBR`, `BGNDAT` and `ENDDAT`.
pub fn parse_day_balance_request(p: &Packet) -> Result<DayBalanceQuery, MessageError> {
    expect_function(p, FUNC_QUERY_DAY_BALANCE)?;
    one_query(p, |fields| {
        Ok(DayBalanceQuery {
            acc_no: fields.required(FIELD_ACCNO)?,
            currency_code: fields.required(FIELD_CCYNBR)?,
            from: fields.required(FIELD_BGNDAT)?,
            to: fields.required(FIELD_ENDDAT)?,
        })
    })
}

/// A `QueryDayBalance` answer with one `DAYBAL` block per record.
pub fn day_balance_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    records: &[DayBalanceRecord],
) -> Packet {
    Packet {
        head: response_head(FUNC_QUERY_DAY_BALANCE, serial, ret_code, ret_msg),
        body: records
            .iter()
            .map(|r| {
                Block::new(BLOCK_DAYBAL)
                    .with(FIELD_BALDAT, r.date.as_str())
                    .with(FIELD_OPNBAL, r.opening.as_str())
                    .with(FIELD_CLSBAL, r.closing.as_str())
            })
            .collect(),
    }
}

/// Reads a `QueryDayBalance` answer: only `DAYBAL` blocks, at most
/// [`MAX_HISTORY_RANGE_DAYS`] (one per day of the longest range), each with
/// `BALDAT`, `OPNBAL` and `CLSBAL`.
pub fn parse_day_balances(p: &Packet) -> Result<Response<DayBalanceRecord>, MessageError> {
    let response = super::response(p, FUNC_QUERY_DAY_BALANCE, BLOCK_DAYBAL, |fields| {
        Ok(DayBalanceRecord {
            date: fields.required(FIELD_BALDAT)?,
            opening: fields.required(FIELD_OPNBAL)?,
            closing: fields.required(FIELD_CLSBAL)?,
        })
    })?;
    if response.records.len() > MAX_HISTORY_RANGE_DAYS {
        return Err(MessageError::TooManyRecords {
            count: response.records.len(),
            max: MAX_HISTORY_RANGE_DAYS,
        });
    }
    Ok(response)
}

// ---------------------------------------------------------------------------
// shared
// ---------------------------------------------------------------------------

/// Reads the one `QUERY` block a request must have.
fn one_query<T>(
    p: &Packet,
    read: impl Fn(&Fields<'_>) -> Result<T, MessageError>,
) -> Result<T, MessageError> {
    let mut queries = records(p, BLOCK_QUERY, read)?;
    match queries.pop() {
        Some(query) if queries.is_empty() => Ok(query),
        _ => Err(MessageError::BlockCount {
            block: BLOCK_QUERY.to_owned(),
            found: p.body.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cn_xml::messages::{balance_response, RET_BAD_REQUEST};

    fn entry(serial: &str, status: &str) -> HistoryRecord {
        HistoryRecord {
            serial: serial.to_owned(),
            booking_date: "20261127".to_owned(),
            value_date: "20261126".to_owned(),
            direction: DIRECTION_CREDIT.to_owned(),
            amount: "12800.00".to_owned(),
            status: status.to_owned(),
            balance: if status == ENTRY_BOOKED {
                "1012800.0000".to_owned()
            } else {
                String::new()
            },
            ctp_name: "上海恒达贸易有限公司".to_owned(),
            ctp_account: "310066771234567".to_owned(),
            ctp_bank: "中国工商银行上海分行".to_owned(),
            narrative: "货款 & 运费 <11月>".to_owned(),
            e2e_ref: String::new(),
        }
    }

    fn query(cont_key: &str) -> HistoryQuery {
        HistoryQuery {
            acc_no: "755900012310001".to_owned(),
            currency_code: "10".to_owned(),
            from: "20260820".to_owned(),
            to: "20261127".to_owned(),
            cont_key: cont_key.to_owned(),
        }
    }

    #[test]
    fn history_request_round_trips_with_and_without_key() {
        for key in ["", "K202611270000000042"] {
            let packet = history_request("DEMO01", "R1", &query(key));
            assert_eq!(packet.head.func, FUNC_QUERY_HISTORY);
            assert_eq!(packet.head.login.as_deref(), Some("DEMO01"));
            assert_eq!(parse_history_request(&packet).unwrap(), query(key));
        }
    }

    #[test]
    fn history_request_without_contkey_reads_as_first_page() {
        let mut packet = history_request("DEMO01", "R1", &query("ignored"));
        packet.body[0]
            .fields
            .retain(|(name, _)| name != FIELD_CONTKEY);
        assert_eq!(parse_history_request(&packet).unwrap().cont_key, "");
    }

    #[test]
    fn history_request_needs_exactly_one_query_block() {
        let mut packet = history_request("DEMO01", "R1", &query(""));
        let block = packet.body[0].clone();
        packet.body.push(block);
        assert_eq!(
            parse_history_request(&packet),
            Err(MessageError::BlockCount {
                block: BLOCK_QUERY.to_owned(),
                found: 2,
            })
        );
        packet.body.clear();
        assert!(matches!(
            parse_history_request(&packet),
            Err(MessageError::BlockCount { found: 0, .. })
        ));
    }

    #[test]
    fn history_request_without_dates_is_refused() {
        let mut packet = history_request("DEMO01", "R1", &query(""));
        packet.body[0]
            .fields
            .retain(|(name, _)| name != FIELD_ENDDAT);
        assert_eq!(
            parse_history_request(&packet),
            Err(MessageError::MissingField {
                block: BLOCK_QUERY.to_owned(),
                index: 1,
                field: FIELD_ENDDAT.to_owned(),
            })
        );
    }

    #[test]
    fn history_page_round_trips_through_parse() {
        let records = vec![entry("000001", ENTRY_BOOKED), entry("", ENTRY_PENDING)];
        let packet = history_response("R1", RET_OK, "", &records, "K1");
        let page = parse_history(&packet).unwrap();
        assert!(page.response.is_ok());
        assert_eq!(page.response.serial, "R1");
        assert_eq!(page.response.records, records);
        assert_eq!(page.cont_key, "K1");
    }

    #[test]
    fn last_page_has_an_empty_key() {
        let packet = history_response("R1", RET_OK, "", &[], "");
        let page = parse_history(&packet).unwrap();
        assert!(page.response.records.is_empty());
        assert_eq!(page.cont_key, "");
    }

    #[test]
    fn accepted_page_without_page_block_is_refused() {
        let mut packet = history_response("R1", RET_OK, "", &[entry("1", "B")], "K");
        packet.body.pop();
        assert_eq!(parse_history(&packet), Err(MessageError::MissingPage));
    }

    #[test]
    fn refused_history_answer_may_have_no_page_block() {
        let mut packet = history_response("R1", RET_BAD_REQUEST, "账户不存在", &[], "");
        packet.body.clear();
        let page = parse_history(&packet).unwrap();
        assert!(!page.response.is_ok());
        assert_eq!(page.response.ret_msg, "账户不存在");
        assert_eq!(page.cont_key, "");
    }

    #[test]
    fn page_block_must_be_last_and_single() {
        let mut packet = history_response("R1", RET_OK, "", &[entry("1", "B")], "K");
        packet.body.push(Block::new(BLOCK_TRANS));
        assert_eq!(
            parse_history(&packet),
            Err(MessageError::MisplacedPage { index: 3 })
        );
        let mut packet = history_response("R1", RET_OK, "", &[], "K");
        packet
            .body
            .push(Block::new(BLOCK_PAGE).with(FIELD_CONTKEY, ""));
        assert_eq!(
            parse_history(&packet),
            Err(MessageError::MisplacedPage { index: 2 })
        );
    }

    #[test]
    fn page_block_without_contkey_is_refused() {
        let mut packet = history_response("R1", RET_OK, "", &[], "K");
        packet.body[0].fields.clear();
        assert!(matches!(
            parse_history(&packet),
            Err(MessageError::MissingField { ref field, .. }) if field == FIELD_CONTKEY
        ));
    }

    #[test]
    fn optional_entry_fields_may_be_missing_required_ones_may_not() {
        let mut packet = history_response("R1", RET_OK, "", &[entry("1", "B")], "");
        for optional in [
            FIELD_TRSSEQ,
            FIELD_BALAMT,
            FIELD_CTPNAM,
            FIELD_CTPACC,
            FIELD_CTPBNK,
            FIELD_NARTXT,
            FIELD_E2EREF,
        ] {
            packet.body[0].fields.retain(|(name, _)| name != optional);
        }
        let page = parse_history(&packet).unwrap();
        let record = &page.response.records[0];
        assert_eq!(record.serial, "");
        assert_eq!(record.ctp_name, "");
        assert_eq!(record.amount, "12800.00");

        for required in [
            FIELD_BOKDAT,
            FIELD_VALDAT,
            FIELD_DIRECT,
            FIELD_TRSAMT,
            FIELD_TRSSTS,
        ] {
            let mut packet = history_response("R1", RET_OK, "", &[entry("1", "B")], "");
            packet.body[0].fields.retain(|(name, _)| name != required);
            assert_eq!(
                parse_history(&packet),
                Err(MessageError::MissingField {
                    block: BLOCK_TRANS.to_owned(),
                    index: 1,
                    field: required.to_owned(),
                }),
                "{required}"
            );
        }
    }

    #[test]
    fn repeated_entry_field_is_refused() {
        let mut packet = history_response("R1", RET_OK, "", &[entry("1", "B")], "");
        packet.body[0]
            .fields
            .push((FIELD_TRSAMT.to_owned(), "1.00".to_owned()));
        assert!(matches!(
            parse_history(&packet),
            Err(MessageError::DuplicateField { index: 1, .. })
        ));
    }

    #[test]
    fn page_over_the_family_limit_is_refused() {
        let full = vec![entry("1", "B"); MAX_HISTORY_RECORDS_PER_PAGE];
        assert!(parse_history(&history_response("R", RET_OK, "", &full, "")).is_ok());
        let over = vec![entry("1", "B"); MAX_HISTORY_RECORDS_PER_PAGE + 1];
        assert_eq!(
            parse_history(&history_response("R", RET_OK, "", &over, "")),
            Err(MessageError::TooManyRecords {
                count: MAX_HISTORY_RECORDS_PER_PAGE + 1,
                max: MAX_HISTORY_RECORDS_PER_PAGE,
            })
        );
    }

    #[test]
    fn foreign_block_in_history_is_refused() {
        let mut packet = history_response("R1", RET_OK, "", &[], "");
        packet.body.insert(0, Block::new(BLOCK_DAYBAL));
        assert!(matches!(
            parse_history(&packet),
            Err(MessageError::UnexpectedBlock { index: 1, .. })
        ));
        let packet = balance_response("R1", RET_OK, "", &[]);
        assert!(matches!(
            parse_history(&packet),
            Err(MessageError::WrongFunction { .. })
        ));
    }

    #[test]
    fn history_answer_without_retcode_is_refused() {
        let mut packet = history_response("R1", RET_OK, "", &[], "");
        packet.head.ret_code = None;
        assert!(matches!(
            parse_history(&packet),
            Err(MessageError::MissingHeadField { .. })
        ));
    }

    fn day_query() -> DayBalanceQuery {
        DayBalanceQuery {
            acc_no: "755900012310001".to_owned(),
            currency_code: "10".to_owned(),
            from: "20261120".to_owned(),
            to: "20261127".to_owned(),
        }
    }

    #[test]
    fn day_balance_request_round_trips() {
        let packet = day_balance_request("DEMO01", "R2", &day_query());
        assert_eq!(packet.head.func, FUNC_QUERY_DAY_BALANCE);
        assert_eq!(parse_day_balance_request(&packet).unwrap(), day_query());
        assert!(matches!(
            parse_history_request(&packet),
            Err(MessageError::WrongFunction { .. })
        ));
    }

    #[test]
    fn day_balances_round_trip_and_need_every_field() {
        let records = vec![
            DayBalanceRecord {
                date: "20261126".to_owned(),
                opening: "-80.00".to_owned(),
                closing: "1000.5000".to_owned(),
            },
            DayBalanceRecord {
                date: "20261127".to_owned(),
                opening: "1000.5000".to_owned(),
                closing: "1000.5000".to_owned(),
            },
        ];
        let packet = day_balance_response("R2", RET_OK, "", &records);
        assert_eq!(parse_day_balances(&packet).unwrap().records, records);

        for field in [FIELD_BALDAT, FIELD_OPNBAL, FIELD_CLSBAL] {
            let mut packet = day_balance_response("R2", RET_OK, "", &records);
            packet.body[1].fields.retain(|(name, _)| name != field);
            assert_eq!(
                parse_day_balances(&packet),
                Err(MessageError::MissingField {
                    block: BLOCK_DAYBAL.to_owned(),
                    index: 2,
                    field: field.to_owned(),
                })
            );
        }
    }

    #[test]
    fn more_day_balances_than_days_in_a_range_are_refused() {
        let record = DayBalanceRecord {
            date: "20261127".to_owned(),
            opening: "1.00".to_owned(),
            closing: "1.00".to_owned(),
        };
        let over = vec![record; MAX_HISTORY_RANGE_DAYS + 1];
        assert!(matches!(
            parse_day_balances(&day_balance_response("R", RET_OK, "", &over)),
            Err(MessageError::TooManyRecords { .. })
        ));
    }
}
