//! Payments: `SubmitPayment` (one instruction) and `QueryPayment` (status by
//! our business reference), as in docs/families/cn-xml.md.
//!
//! The family's status has two levels, as in CMB's direct connect: the
//! packet's `RETCODE` says whether the request was taken at all, then each
//! `RESULT` block carries the instruction's own request status (`REQSTS`:
//! accepted, finished, waiting…) and, once finished, a result flag
//! (`RTNFLG`: success, failed, returned, rejected, expired, cancelled).
//! Everything stays the bank's text here; the connector maps it.
//!
//! A `SubmitPayment` with a `YURREF` the bank has seen before never executes
//! again: the bank answers `RETCODE` [`RET_DUPLICATE_REFERENCE`] and puts the
//! original instruction's current result in the `RESULT` block.
//!
//! Field lengths are the bank's, in GBK bytes ([`FIELD_LIMITS`]);
//! [`check_payment`] and [`check_field`] let a caller refuse an instruction
//! before anything is sent (an unencodable character is refused too).
//!
//! Layout: constants, limits and their check, record types, `SubmitPayment`
//! (request, response), then `QueryPayment`.

use encoding_rs::{EncoderResult, GBK};

use super::{
    expect_function, records, request_head, response, response_head, Block, Fields, MessageError,
    Packet, Response, BLOCK_QUERY, FIELD_CCYNBR, FIELD_TRSAMT,
};
use crate::cn_xml::{gbk_changes_private_use, is_xml_char};

/// Function code: one payment instruction.
pub const FUNC_SUBMIT_PAYMENT: &str = "SubmitPayment";
/// Function code: the status of payments by our business reference.
pub const FUNC_QUERY_PAYMENT: &str = "QueryPayment";

/// The family's most `QUERY` blocks in one `QueryPayment`.
pub const MAX_REFERENCES_PER_QUERY: usize = 50;

/// `RETCODE` of a `SubmitPayment` whose `YURREF` was already used: nothing
/// was executed by this request; the `RESULT` block is the original's.
pub const RET_DUPLICATE_REFERENCE: &str = "DUPLICATE_REFERENCE";
/// `ERRCOD` of a `QueryPayment` result for a reference the bank does not know.
pub const ERR_NOT_FOUND: &str = "NOT_FOUND";

/// `REQSTS`: accepted, being processed.
pub const REQSTS_ACCEPTED: &str = "ACC";
/// `REQSTS`: waiting (for approval at the bank, or the execution date).
pub const REQSTS_WAITING: &str = "AUT";
/// `REQSTS`: finished; `RTNFLG` says how.
pub const REQSTS_FINISHED: &str = "FIN";

/// `RTNFLG` values, set once `REQSTS` is [`REQSTS_FINISHED`].
pub const RTNFLG_SUCCESS: &str = "S";
pub const RTNFLG_FAILED: &str = "F";
/// Returned by the creditor's bank after settlement (退票).
pub const RTNFLG_RETURNED: &str = "R";
pub const RTNFLG_REJECTED: &str = "B";
pub const RTNFLG_EXPIRED: &str = "E";
pub const RTNFLG_CANCELLED: &str = "C";

/// `CRTTYP`: corporate (对公) or personal (对私) creditor.
pub const CRTTYP_CORPORATE: &str = "C";
pub const CRTTYP_PERSONAL: &str = "P";
/// `URGENT`: `Y` urgent (加急), `N` normal.
pub const URGENT_YES: &str = "Y";
pub const URGENT_NO: &str = "N";

/// Block names.
pub const BLOCK_PAYMENT: &str = "PAYMENT";
pub const BLOCK_RESULT: &str = "RESULT";

/// Field names.
pub const FIELD_YURREF: &str = "YURREF";
pub const FIELD_DBTACC: &str = "DBTACC";
pub const FIELD_CRTACC: &str = "CRTACC";
pub const FIELD_CRTNAM: &str = "CRTNAM";
pub const FIELD_CRTBNK: &str = "CRTBNK";
pub const FIELD_CRTBIC: &str = "CRTBIC";
pub const FIELD_CRTBNM: &str = "CRTBNM";
pub const FIELD_CRTTYP: &str = "CRTTYP";
pub const FIELD_NUSAGE: &str = "NUSAGE";
pub const FIELD_BUSNAR: &str = "BUSNAR";
pub const FIELD_URGENT: &str = "URGENT";
pub const FIELD_EPTDAT: &str = "EPTDAT";
pub const FIELD_REQSTS: &str = "REQSTS";
pub const FIELD_RTNFLG: &str = "RTNFLG";
pub const FIELD_ERRCOD: &str = "ERRCOD";
pub const FIELD_ERRTXT: &str = "ERRTXT";
pub const FIELD_BNKREF: &str = "BNKREF";

/// Longest `YURREF`, in bytes (ASCII): the bank's business reference field.
pub const MAX_YURREF_BYTES: usize = 30;
pub const MAX_DBTACC_BYTES: usize = 35;
pub const MAX_CRTACC_BYTES: usize = 35;
/// Creditor name (收款人户名), in GBK bytes: 30 Chinese characters.
pub const MAX_CRTNAM_BYTES: usize = 60;
/// CNAPS bank code: 12 digits.
pub const MAX_CRTBNK_BYTES: usize = 12;
pub const MAX_CRTBIC_BYTES: usize = 11;
/// Creditor bank name, in GBK bytes.
pub const MAX_CRTBNM_BYTES: usize = 60;
/// Remittance (用途), in GBK bytes: 30 Chinese characters.
pub const MAX_NUSAGE_BYTES: usize = 60;
/// Purpose / business narrative (业务摘要), in GBK bytes.
pub const MAX_BUSNAR_BYTES: usize = 200;
/// Amount text, e.g. `1234567890123.45`.
pub const MAX_TRSAMT_BYTES: usize = 18;

/// Every length-limited field of a `PAYMENT` block and its limit in GBK
/// bytes; fixed-shape fields (`CCYNBR`, `CRTTYP`, `URGENT`, `EPTDAT`) are
/// checked by their builders' callers.
pub const FIELD_LIMITS: &[(&str, usize)] = &[
    (FIELD_YURREF, MAX_YURREF_BYTES),
    (FIELD_DBTACC, MAX_DBTACC_BYTES),
    (FIELD_TRSAMT, MAX_TRSAMT_BYTES),
    (FIELD_CRTACC, MAX_CRTACC_BYTES),
    (FIELD_CRTNAM, MAX_CRTNAM_BYTES),
    (FIELD_CRTBNK, MAX_CRTBNK_BYTES),
    (FIELD_CRTBIC, MAX_CRTBIC_BYTES),
    (FIELD_CRTBNM, MAX_CRTBNM_BYTES),
    (FIELD_NUSAGE, MAX_NUSAGE_BYTES),
    (FIELD_BUSNAR, MAX_BUSNAR_BYTES),
];

/// Why a field of a payment cannot be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{field} is {bytes} bytes in GBK; the bank allows at most {max_bytes}")]
    TooLong {
        field: String,
        bytes: usize,
        max_bytes: usize,
    },
    #[error("{field}: character {ch:?} (U+{code:04X}) cannot be encoded in GBK", code = u32::from(*ch))]
    Unencodable { field: String, ch: char },
    #[error("{field}: character U+{code:04X} is not allowed in XML 1.0 text", code = u32::from(*ch))]
    InvalidChar { field: String, ch: char },
    #[error("{field} is required and empty")]
    Empty { field: String },
    /// A value the field cannot take in this context.
    #[error("{field}: expected {expected}")]
    Invalid { field: String, expected: String },
}

/// The length of `text` in GBK bytes, or the first character GBK (or XML)
/// cannot carry, named with `field`.
pub fn gbk_len(field: &str, text: &str) -> Result<usize, FieldError> {
    if let Some(ch) = text.chars().find(|ch| !is_xml_char(*ch)) {
        return Err(FieldError::InvalidChar {
            field: field.to_owned(),
            ch,
        });
    }
    if let Some(ch) = text.chars().find(|ch| gbk_changes_private_use(*ch)) {
        return Err(FieldError::Unencodable {
            field: field.to_owned(),
            ch,
        });
    }
    let mut encoder = GBK.new_encoder();
    let mut total = 0usize;
    let mut rest = text;
    let mut buffer = [0u8; 256];
    loop {
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buffer, true);
        total = total.saturating_add(written);
        rest = rest.get(read..).unwrap_or_default();
        match result {
            EncoderResult::InputEmpty => return Ok(total),
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(ch) => {
                return Err(FieldError::Unencodable {
                    field: field.to_owned(),
                    ch,
                })
            }
        }
    }
}

/// Checks one field against its limit in [`FIELD_LIMITS`] (a field without a
/// limit is only checked for encodability).
pub fn check_field(field: &str, text: &str) -> Result<(), FieldError> {
    let bytes = gbk_len(field, text)?;
    match FIELD_LIMITS.iter().find(|(name, _)| *name == field) {
        Some((_, max_bytes)) if bytes > *max_bytes => Err(FieldError::TooLong {
            field: field.to_owned(),
            bytes,
            max_bytes: *max_bytes,
        }),
        _ => Ok(()),
    }
}

/// Checks every field of an instruction: required ones non-empty, all
/// encodable, all within [`FIELD_LIMITS`]. The first problem is returned.
pub fn check_payment(payment: &PaymentRequest) -> Result<(), FieldError> {
    let required = [
        (FIELD_YURREF, &payment.reference),
        (FIELD_DBTACC, &payment.debtor_account),
        (FIELD_CCYNBR, &payment.currency_code),
        (FIELD_TRSAMT, &payment.amount),
        (FIELD_CRTACC, &payment.creditor_account),
        (FIELD_CRTNAM, &payment.creditor_name),
        (FIELD_CRTTYP, &payment.creditor_type),
        (FIELD_NUSAGE, &payment.remittance),
        (FIELD_URGENT, &payment.urgent),
        (FIELD_EPTDAT, &payment.execution_date),
    ];
    for (field, text) in required {
        if text.is_empty() {
            return Err(FieldError::Empty {
                field: field.to_owned(),
            });
        }
        check_field(field, text)?;
    }
    let optional = [
        (FIELD_CRTBNK, &payment.creditor_bank_code),
        (FIELD_CRTBIC, &payment.creditor_bic),
        (FIELD_CRTBNM, &payment.creditor_bank_name),
        (FIELD_BUSNAR, &payment.purpose),
    ];
    for (field, text) in optional {
        check_field(field, text)?;
    }
    Ok(())
}

/// A `PAYMENT` block: one instruction, as the bank's text. Optional fields
/// are empty strings when absent and are then left out of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// `YURREF`: our business reference, identical on every resend.
    pub reference: String,
    /// `DBTACC`
    pub debtor_account: String,
    /// `CCYNBR`
    pub currency_code: String,
    /// `TRSAMT`: decimal major units, positive.
    pub amount: String,
    /// `CRTACC`
    pub creditor_account: String,
    /// `CRTNAM`
    pub creditor_name: String,
    /// `CRTBNK`: CNAPS code (optional).
    pub creditor_bank_code: String,
    /// `CRTBIC` (optional).
    pub creditor_bic: String,
    /// `CRTBNM` (optional).
    pub creditor_bank_name: String,
    /// `CRTTYP`: [`CRTTYP_CORPORATE`] or [`CRTTYP_PERSONAL`].
    pub creditor_type: String,
    /// `NUSAGE`: remittance information.
    pub remittance: String,
    /// `BUSNAR`: purpose (optional).
    pub purpose: String,
    /// `URGENT`: [`URGENT_YES`] or [`URGENT_NO`].
    pub urgent: String,
    /// `EPTDAT`: requested execution date, `yyyyMMdd`.
    pub execution_date: String,
}

/// A `RESULT` block: where one instruction stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentResult {
    /// `YURREF`
    pub reference: String,
    /// `REQSTS`: empty for an unknown reference.
    pub request_status: String,
    /// `RTNFLG`: empty while not finished.
    pub result_flag: String,
    /// `ERRCOD`: the bank's code for a failure, or [`ERR_NOT_FOUND`].
    pub error_code: String,
    /// `ERRTXT`
    pub error_text: String,
    /// `BNKREF`: the bank's own id of the payment.
    pub bank_ref: String,
}

impl PaymentResult {
    /// The answer for a reference the bank has no instruction for.
    pub fn not_found(reference: &str, text: &str) -> PaymentResult {
        PaymentResult {
            reference: reference.to_owned(),
            error_code: ERR_NOT_FOUND.to_owned(),
            error_text: text.to_owned(),
            ..PaymentResult::default()
        }
    }

    /// Whether this result says the bank knows no such instruction.
    pub fn is_not_found(&self) -> bool {
        self.error_code == ERR_NOT_FOUND && self.request_status.is_empty()
    }
}

fn result_block(r: &PaymentResult) -> Block {
    Block::new(BLOCK_RESULT)
        .with(FIELD_YURREF, r.reference.as_str())
        .with(FIELD_REQSTS, r.request_status.as_str())
        .with(FIELD_RTNFLG, r.result_flag.as_str())
        .with(FIELD_ERRCOD, r.error_code.as_str())
        .with(FIELD_ERRTXT, r.error_text.as_str())
        .with(FIELD_BNKREF, r.bank_ref.as_str())
}

/// `YURREF` and `REQSTS` are required (an unknown reference has an empty
/// `REQSTS`); the rest may be left out and read as empty.
fn read_result(fields: &Fields<'_>) -> Result<PaymentResult, MessageError> {
    let optional = |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
    Ok(PaymentResult {
        reference: fields.required(FIELD_YURREF)?,
        request_status: fields.required(FIELD_REQSTS)?,
        result_flag: optional(FIELD_RTNFLG)?,
        error_code: optional(FIELD_ERRCOD)?,
        error_text: optional(FIELD_ERRTXT)?,
        bank_ref: optional(FIELD_BNKREF)?,
    })
}

// ---------------------------------------------------------------------------
// SubmitPayment
// ---------------------------------------------------------------------------

/// A `SubmitPayment` request with one `PAYMENT` block. Does not check
/// lengths (see [`check_payment`]) so that tests can check the bank side.
pub fn submit_payment_request(login: &str, serial: &str, payment: &PaymentRequest) -> Packet {
    let mut block = Block::new(BLOCK_PAYMENT)
        .with(FIELD_YURREF, payment.reference.as_str())
        .with(FIELD_DBTACC, payment.debtor_account.as_str())
        .with(FIELD_CCYNBR, payment.currency_code.as_str())
        .with(FIELD_TRSAMT, payment.amount.as_str())
        .with(FIELD_CRTACC, payment.creditor_account.as_str())
        .with(FIELD_CRTNAM, payment.creditor_name.as_str());
    for (field, text) in [
        (FIELD_CRTBNK, &payment.creditor_bank_code),
        (FIELD_CRTBIC, &payment.creditor_bic),
        (FIELD_CRTBNM, &payment.creditor_bank_name),
    ] {
        if !text.is_empty() {
            block = block.with(field, text.as_str());
        }
    }
    block = block
        .with(FIELD_CRTTYP, payment.creditor_type.as_str())
        .with(FIELD_NUSAGE, payment.remittance.as_str());
    if !payment.purpose.is_empty() {
        block = block.with(FIELD_BUSNAR, payment.purpose.as_str());
    }
    block = block
        .with(FIELD_URGENT, payment.urgent.as_str())
        .with(FIELD_EPTDAT, payment.execution_date.as_str());
    Packet {
        head: request_head(FUNC_SUBMIT_PAYMENT, login, serial),
        body: vec![block],
    }
}

/// Reads a `SubmitPayment` request: exactly one `PAYMENT` block.
pub fn parse_submit_payment_request(p: &Packet) -> Result<PaymentRequest, MessageError> {
    expect_function(p, FUNC_SUBMIT_PAYMENT)?;
    if p.body.len() != 1 {
        return Err(MessageError::BlockCount {
            block: BLOCK_PAYMENT.to_owned(),
            found: p.body.len(),
        });
    }
    let mut payments = records(p, BLOCK_PAYMENT, |fields| {
        let optional =
            |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
        Ok(PaymentRequest {
            reference: fields.required(FIELD_YURREF)?,
            debtor_account: fields.required(FIELD_DBTACC)?,
            currency_code: fields.required(FIELD_CCYNBR)?,
            amount: fields.required(FIELD_TRSAMT)?,
            creditor_account: fields.required(FIELD_CRTACC)?,
            creditor_name: fields.required(FIELD_CRTNAM)?,
            creditor_bank_code: optional(FIELD_CRTBNK)?,
            creditor_bic: optional(FIELD_CRTBIC)?,
            creditor_bank_name: optional(FIELD_CRTBNM)?,
            creditor_type: fields.required(FIELD_CRTTYP)?,
            remittance: fields.required(FIELD_NUSAGE)?,
            purpose: optional(FIELD_BUSNAR)?,
            urgent: fields.required(FIELD_URGENT)?,
            execution_date: fields.required(FIELD_EPTDAT)?,
        })
    })?;
    payments.pop().ok_or(MessageError::BlockCount {
        block: BLOCK_PAYMENT.to_owned(),
        found: 0,
    })
}

/// A `SubmitPayment` response: the request status and, when the bank has a
/// result to report (accepted, or a duplicate reference), one `RESULT`.
pub fn submit_payment_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    result: Option<&PaymentResult>,
) -> Packet {
    Packet {
        head: response_head(FUNC_SUBMIT_PAYMENT, serial, ret_code, ret_msg),
        body: result.map(result_block).into_iter().collect(),
    }
}

/// Reads a `SubmitPayment` response: at most one `RESULT` block.
pub fn parse_submit_payment(p: &Packet) -> Result<Response<PaymentResult>, MessageError> {
    let parsed = response(p, FUNC_SUBMIT_PAYMENT, BLOCK_RESULT, read_result)?;
    if parsed.records.len() > 1 {
        return Err(MessageError::TooManyRecords {
            count: parsed.records.len(),
            max: 1,
        });
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------
// QueryPayment
// ---------------------------------------------------------------------------

/// A `QueryPayment` request with one `QUERY` block (`YURREF`) per
/// reference, in order. Callers split longer lists into chunks of
/// [`MAX_REFERENCES_PER_QUERY`].
pub fn query_payment_request(login: &str, serial: &str, references: &[String]) -> Packet {
    Packet {
        head: request_head(FUNC_QUERY_PAYMENT, login, serial),
        body: references
            .iter()
            .map(|reference| Block::new(BLOCK_QUERY).with(FIELD_YURREF, reference.as_str()))
            .collect(),
    }
}

/// Reads a `QueryPayment` request: 1 to [`MAX_REFERENCES_PER_QUERY`]
/// `QUERY` blocks, each with a `YURREF`.
pub fn parse_query_payment_request(p: &Packet) -> Result<Vec<String>, MessageError> {
    expect_function(p, FUNC_QUERY_PAYMENT)?;
    if p.body.is_empty() {
        return Err(MessageError::BlockCount {
            block: BLOCK_QUERY.to_owned(),
            found: 0,
        });
    }
    if p.body.len() > MAX_REFERENCES_PER_QUERY {
        return Err(MessageError::TooManyRecords {
            count: p.body.len(),
            max: MAX_REFERENCES_PER_QUERY,
        });
    }
    records(p, BLOCK_QUERY, |fields| fields.required(FIELD_YURREF))
}

/// A `QueryPayment` response with one `RESULT` block per reference asked.
pub fn query_payment_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    results: &[PaymentResult],
) -> Packet {
    Packet {
        head: response_head(FUNC_QUERY_PAYMENT, serial, ret_code, ret_msg),
        body: results.iter().map(result_block).collect(),
    }
}

/// Reads a `QueryPayment` response: at most [`MAX_REFERENCES_PER_QUERY`]
/// `RESULT` blocks.
pub fn parse_query_payment(p: &Packet) -> Result<Response<PaymentResult>, MessageError> {
    let parsed = response(p, FUNC_QUERY_PAYMENT, BLOCK_RESULT, read_result)?;
    if parsed.records.len() > MAX_REFERENCES_PER_QUERY {
        return Err(MessageError::TooManyRecords {
            count: parsed.records.len(),
            max: MAX_REFERENCES_PER_QUERY,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cn_xml::{decode, encode, Limits};

    fn payment() -> PaymentRequest {
        PaymentRequest {
            reference: "BD01H7K2M9Q4X8".into(),
            debtor_account: "755900012310001".into(),
            currency_code: "10".into(),
            amount: "1234.50".into(),
            creditor_account: "6222020200112233".into(),
            creditor_name: "上海某某贸易有限公司".into(),
            creditor_bank_code: "102290000011".into(),
            creditor_bic: String::new(),
            creditor_bank_name: "中国工商银行上海分行".into(),
            creditor_type: CRTTYP_CORPORATE.into(),
            remittance: "货款".into(),
            purpose: String::new(),
            urgent: URGENT_NO.into(),
            execution_date: "20261127".into(),
        }
    }

    #[test]
    fn submit_request_round_trips_through_the_wire() {
        let packet = submit_payment_request("DEMO01", "R1", &payment());
        let bytes = encode(&packet).unwrap();
        let back = decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(parse_submit_payment_request(&back).unwrap(), payment());
        assert!(
            back.body[0].get(FIELD_CRTBIC).is_none(),
            "empty optional left out"
        );
    }

    #[test]
    fn submit_request_with_two_payments_is_refused() {
        let mut packet = submit_payment_request("DEMO01", "R1", &payment());
        packet.body.push(packet.body[0].clone());
        assert_eq!(
            parse_submit_payment_request(&packet),
            Err(MessageError::BlockCount {
                block: BLOCK_PAYMENT.into(),
                found: 2
            })
        );
    }

    #[test]
    fn lengths_are_counted_in_gbk_bytes() {
        assert_eq!(gbk_len("X", "abc").unwrap(), 3);
        assert_eq!(gbk_len("X", "货款").unwrap(), 4);
        // 30 Chinese characters are exactly 60 bytes: allowed; 31 are not.
        let name = "测".repeat(30);
        assert!(check_field(FIELD_CRTNAM, &name).is_ok());
        let long = "测".repeat(31);
        assert_eq!(
            check_field(FIELD_CRTNAM, &long),
            Err(FieldError::TooLong {
                field: FIELD_CRTNAM.into(),
                bytes: 62,
                max_bytes: MAX_CRTNAM_BYTES
            })
        );
        // 61 ASCII characters are 61 bytes, over the limit too.
        assert!(check_field(FIELD_NUSAGE, &"a".repeat(61)).is_err());
        assert!(check_field(FIELD_NUSAGE, &"a".repeat(60)).is_ok());
    }

    #[test]
    fn unencodable_and_control_characters_are_refused() {
        assert!(matches!(
            gbk_len(FIELD_CRTNAM, "张😀"),
            Err(FieldError::Unencodable { ch: '😀', .. })
        ));
        // Encodable, but GBK would write it as bytes that read back as U+9FB7.
        assert!(matches!(
            gbk_len(FIELD_CRTNAM, "张\u{E82C}"),
            Err(FieldError::Unencodable { ch: '\u{E82C}', .. })
        ));
        assert_eq!(gbk_len(FIELD_CRTNAM, "张\u{E000}"), Ok(4));
        assert!(matches!(
            gbk_len(FIELD_NUSAGE, "a\u{1}"),
            Err(FieldError::InvalidChar { .. })
        ));
        let mut bad = payment();
        bad.remittance = String::new();
        assert_eq!(
            check_payment(&bad),
            Err(FieldError::Empty {
                field: FIELD_NUSAGE.into()
            })
        );
        assert!(check_payment(&payment()).is_ok());
    }

    #[test]
    fn gbk_len_handles_long_text_across_buffer_refills() {
        let text = "货".repeat(1000);
        assert_eq!(gbk_len("X", &text).unwrap(), 2000);
    }

    #[test]
    fn submit_response_carries_at_most_one_result() {
        let result = PaymentResult {
            reference: "BD1".into(),
            request_status: REQSTS_FINISHED.into(),
            result_flag: RTNFLG_SUCCESS.into(),
            bank_ref: "B0001".into(),
            ..PaymentResult::default()
        };
        let packet = submit_payment_response("R1", RET_DUPLICATE_REFERENCE, "重复", Some(&result));
        let parsed = parse_submit_payment(&packet).unwrap();
        assert_eq!(parsed.ret_code, RET_DUPLICATE_REFERENCE);
        assert_eq!(parsed.records, vec![result.clone()]);
        let mut two = packet.clone();
        two.body.push(two.body[0].clone());
        assert!(matches!(
            parse_submit_payment(&two),
            Err(MessageError::TooManyRecords { count: 2, max: 1 })
        ));
        let empty = submit_payment_response("R1", "BAD_REQUEST", "格式错误", None);
        assert!(parse_submit_payment(&empty).unwrap().records.is_empty());
    }

    #[test]
    fn query_request_sizes_outside_one_to_fifty_are_refused() {
        let refs: Vec<String> = (0..MAX_REFERENCES_PER_QUERY)
            .map(|i| format!("R{i}"))
            .collect();
        let packet = query_payment_request("L", "S", &refs);
        assert_eq!(parse_query_payment_request(&packet).unwrap(), refs);
        let mut over = refs.clone();
        over.push("X".into());
        assert!(matches!(
            parse_query_payment_request(&query_payment_request("L", "S", &over)),
            Err(MessageError::TooManyRecords { .. })
        ));
        assert!(matches!(
            parse_query_payment_request(&query_payment_request("L", "S", &[])),
            Err(MessageError::BlockCount { found: 0, .. })
        ));
    }

    #[test]
    fn not_found_result_round_trips() {
        let results = vec![
            PaymentResult::not_found("A1", "业务参考号不存在"),
            PaymentResult {
                reference: "A2".into(),
                request_status: REQSTS_ACCEPTED.into(),
                ..PaymentResult::default()
            },
        ];
        let packet = query_payment_response("S", "0", "", &results);
        let parsed = parse_query_payment(&packet).unwrap();
        assert!(parsed.records[0].is_not_found());
        assert!(!parsed.records[1].is_not_found());
        assert_eq!(parsed.records, results);
    }

    #[test]
    fn result_without_request_status_is_refused() {
        let mut packet = query_payment_response("S", "0", "", &[PaymentResult::default()]);
        packet.body[0]
            .fields
            .retain(|(name, _)| name != FIELD_REQSTS);
        assert!(matches!(
            parse_query_payment(&packet),
            Err(MessageError::MissingField { .. })
        ));
    }
}
