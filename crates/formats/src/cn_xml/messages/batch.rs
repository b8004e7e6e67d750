//! Batches: `SubmitBatch` (a supplier run, 批量支付), `SubmitPayroll` (a
//! payroll run, 代发工资) and `QueryBatch` (where a submitted chunk and each
//! of its items stand), modelled on CMB's direct-connect batch functions and
//! described in docs/families/cn-xml.md.
//!
//! A submission is one chunk of a batch: a `BATCH` header block (the chunk's
//! business reference `YURREF`, the whole batch's `BATREF`, debtor,
//! currency, execution date, item count `TOTNUM`, control sum `TOTAMT` and
//! kind `BATTYP`) followed by 1 to [`MAX_BATCH_ITEMS`] `ITEM` blocks, each
//! with its own reference `ITMREF` and the creditor fields of a single
//! payment. Both functions take the same blocks; a payroll item pays a
//! person (`CRTTYP` `P`), its bank code may be left out.
//!
//! The status has the same two levels as single payments: the packet's
//! `RETCODE`, then a `SUMMARY` block for the chunk (request status,
//! finished flag `FINFLG`, counts) and, in a `QueryBatch` answer, one
//! `DETAIL` block per item carrying the item's `REQSTS`/`RTNFLG`/`ERRCOD`
//! exactly like a single payment's `RESULT` (read into the same
//! [`PaymentResult`], its `reference` being the `ITMREF`). A chunk
//! `YURREF` the bank has seen before never executes again: `RETCODE`
//! [`RET_DUPLICATE_REFERENCE`] with the original's `SUMMARY`.
//!
//! Lengths are the bank's, in GBK bytes: the single-payment limits
//! ([`FIELD_LIMITS`]) plus [`BATCH_FIELD_LIMITS`]. [`check_batch_item`]
//! names every problem of one item relative to the item (`creditor.name`,
//! `amount`…); [`check_batch_header`] checks the header.
//!
//! Layout: constants and limits, checks, record types, `SubmitBatch` /
//! `SubmitPayroll` (request, response), then `QueryBatch`.

#[cfg(doc)]
use super::RET_DUPLICATE_REFERENCE;
use super::{
    clip, expect_function, gbk_len, request_head, response_head, Block, FieldError, Fields,
    MessageError, Packet, PaymentResult, BLOCK_QUERY, CRTTYP_PERSONAL, ERR_NOT_FOUND, FIELD_BNKREF,
    FIELD_BUSNAR, FIELD_CCYNBR, FIELD_CRTACC, FIELD_CRTBIC, FIELD_CRTBNK, FIELD_CRTBNM,
    FIELD_CRTNAM, FIELD_CRTTYP, FIELD_DBTACC, FIELD_EPTDAT, FIELD_ERRCOD, FIELD_ERRTXT,
    FIELD_LIMITS, FIELD_NUSAGE, FIELD_REQSTS, FIELD_RTNFLG, FIELD_TRSAMT, FIELD_YURREF,
};

/// Function code: one chunk of a supplier batch (批量支付), one debit per item.
pub const FUNC_SUBMIT_BATCH: &str = "SubmitBatch";
/// Function code: one chunk of a payroll run (代发工资), one debit for the run.
pub const FUNC_SUBMIT_PAYROLL: &str = "SubmitPayroll";
/// Function code: a chunk's summary and per-item results by its `YURREF`.
pub const FUNC_QUERY_BATCH: &str = "QueryBatch";

/// The family's most `ITEM` blocks in one submission.
pub const MAX_BATCH_ITEMS: usize = 500;

/// `BATTYP` of a supplier chunk.
pub const BATTYP_SUPPLIER: &str = "S";
/// `BATTYP` of a payroll chunk.
pub const BATTYP_PAYROLL: &str = "P";

/// `FINFLG`: the bank has finished with every item of the chunk.
pub const FINFLG_YES: &str = "Y";
pub const FINFLG_NO: &str = "N";

/// `ERRCOD` of an item whose `ITMREF` the bank already executed (in this or
/// another chunk, or as a single payment): the item fails and nothing is
/// paid a second time.
pub const ERR_DUPLICATE_ITEM: &str = "DUPLICATE_ITEM";

/// Block names.
pub const BLOCK_BATCH: &str = "BATCH";
pub const BLOCK_ITEM: &str = "ITEM";
pub const BLOCK_SUMMARY: &str = "SUMMARY";
pub const BLOCK_DETAIL: &str = "DETAIL";

/// Field names (the shared ones are the single payment's).
pub const FIELD_BATREF: &str = "BATREF";
pub const FIELD_BATTYP: &str = "BATTYP";
pub const FIELD_TOTNUM: &str = "TOTNUM";
pub const FIELD_TOTAMT: &str = "TOTAMT";
pub const FIELD_ITMREF: &str = "ITMREF";
pub const FIELD_FINFLG: &str = "FINFLG";
pub const FIELD_SUCNUM: &str = "SUCNUM";
pub const FIELD_FALNUM: &str = "FALNUM";

/// Longest `BATREF`, in bytes (ASCII), like `YURREF`.
pub const MAX_BATREF_BYTES: usize = 30;
/// Longest `ITMREF`, in bytes (ASCII), like `YURREF`.
pub const MAX_ITMREF_BYTES: usize = 30;
/// Item count text: at most six digits.
pub const MAX_TOTNUM_BYTES: usize = 6;
/// Control sum text: up to 500 items of the largest `TRSAMT`.
pub const MAX_TOTAMT_BYTES: usize = 21;

/// The batch-only length-limited fields and their limits in GBK bytes; the
/// fields shared with single payments keep [`FIELD_LIMITS`].
pub const BATCH_FIELD_LIMITS: &[(&str, usize)] = &[
    (FIELD_BATREF, MAX_BATREF_BYTES),
    (FIELD_ITMREF, MAX_ITMREF_BYTES),
    (FIELD_TOTNUM, MAX_TOTNUM_BYTES),
    (FIELD_TOTAMT, MAX_TOTAMT_BYTES),
];

/// Which of the two submit functions a chunk goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchFunction {
    /// `SubmitBatch`, `BATTYP` `S`.
    Supplier,
    /// `SubmitPayroll`, `BATTYP` `P`.
    Payroll,
}

impl BatchFunction {
    /// The function code (`FUNC`).
    pub fn code(self) -> &'static str {
        match self {
            BatchFunction::Supplier => FUNC_SUBMIT_BATCH,
            BatchFunction::Payroll => FUNC_SUBMIT_PAYROLL,
        }
    }

    /// The header's `BATTYP`.
    pub fn type_code(self) -> &'static str {
        match self {
            BatchFunction::Supplier => BATTYP_SUPPLIER,
            BatchFunction::Payroll => BATTYP_PAYROLL,
        }
    }

    /// The function of a function code, if it is a batch submission.
    pub fn of_code(func: &str) -> Option<BatchFunction> {
        match func {
            FUNC_SUBMIT_BATCH => Some(BatchFunction::Supplier),
            FUNC_SUBMIT_PAYROLL => Some(BatchFunction::Payroll),
            _ => None,
        }
    }
}

/// Checks one field against its limit in [`BATCH_FIELD_LIMITS`] or
/// [`FIELD_LIMITS`] (a field in neither is only checked for encodability).
pub fn check_batch_field(field: &str, text: &str) -> Result<(), FieldError> {
    let bytes = gbk_len(field, text)?;
    let limit = BATCH_FIELD_LIMITS
        .iter()
        .chain(FIELD_LIMITS)
        .find(|(name, _)| *name == field);
    match limit {
        Some((_, max_bytes)) if bytes > *max_bytes => Err(FieldError::TooLong {
            field: field.to_owned(),
            bytes,
            max_bytes: *max_bytes,
        }),
        _ => Ok(()),
    }
}

/// One problem of a batch item: the field named relative to the item (as a
/// caller's API names it), and the bank-level error naming the wire field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFieldProblem {
    /// `reference`, `amount`, `creditor.name`, `creditor.account`,
    /// `creditor.bank_code`, `creditor.bic`, `creditor.bank_name`,
    /// `creditor.type`, `remittance` or `purpose`.
    pub field: &'static str,
    pub error: FieldError,
}

/// Checks every field of one item: required ones non-empty, all encodable
/// and within their GBK byte limits, and a payroll item paying a person.
/// Every problem is returned, in field order.
pub fn check_batch_item(
    function: BatchFunction,
    item: &BatchItemRequest,
) -> Result<(), Vec<ItemFieldProblem>> {
    let fields: [(&'static str, &str, &String, bool); 10] = [
        ("reference", FIELD_ITMREF, &item.reference, true),
        ("amount", FIELD_TRSAMT, &item.amount, true),
        (
            "creditor.account",
            FIELD_CRTACC,
            &item.creditor_account,
            true,
        ),
        ("creditor.name", FIELD_CRTNAM, &item.creditor_name, true),
        (
            "creditor.bank_code",
            FIELD_CRTBNK,
            &item.creditor_bank_code,
            false,
        ),
        ("creditor.bic", FIELD_CRTBIC, &item.creditor_bic, false),
        (
            "creditor.bank_name",
            FIELD_CRTBNM,
            &item.creditor_bank_name,
            false,
        ),
        ("creditor.type", FIELD_CRTTYP, &item.creditor_type, true),
        ("remittance", FIELD_NUSAGE, &item.remittance, true),
        ("purpose", FIELD_BUSNAR, &item.purpose, false),
    ];
    let mut problems = Vec::new();
    for (name, wire, text, required) in fields {
        let checked = if required && text.is_empty() {
            Err(FieldError::Empty {
                field: wire.to_owned(),
            })
        } else {
            check_batch_field(wire, text)
        };
        if let Err(error) = checked {
            problems.push(ItemFieldProblem { field: name, error });
        }
    }
    if function == BatchFunction::Payroll
        && !item.creditor_type.is_empty()
        && item.creditor_type != CRTTYP_PERSONAL
    {
        problems.push(ItemFieldProblem {
            field: "creditor.type",
            error: FieldError::Invalid {
                field: FIELD_CRTTYP.to_owned(),
                expected: "P: a payroll run (代发) pays persons only".to_owned(),
            },
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks the header fields of a chunk (not its items, see
/// [`check_batch_item`]): all required, encodable and within their limits.
/// The first problem is returned.
pub fn check_batch_header(batch: &BatchRequest) -> Result<(), FieldError> {
    for (field, text) in [
        (FIELD_YURREF, &batch.reference),
        (FIELD_BATREF, &batch.batch_reference),
        (FIELD_DBTACC, &batch.debtor_account),
        (FIELD_CCYNBR, &batch.currency_code),
        (FIELD_EPTDAT, &batch.execution_date),
        (FIELD_TOTNUM, &batch.item_count),
        (FIELD_TOTAMT, &batch.control_sum),
    ] {
        if text.is_empty() {
            return Err(FieldError::Empty {
                field: field.to_owned(),
            });
        }
        check_batch_field(field, text)?;
    }
    Ok(())
}

/// An `ITEM` block, as the bank's text; optional fields are empty strings
/// when absent and are then left out of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItemRequest {
    /// `ITMREF`: the item's own business reference.
    pub reference: String,
    /// `TRSAMT`: decimal major units in the chunk's currency, positive.
    pub amount: String,
    /// `CRTACC`
    pub creditor_account: String,
    /// `CRTNAM`
    pub creditor_name: String,
    /// `CRTBNK` (optional).
    pub creditor_bank_code: String,
    /// `CRTBIC` (optional).
    pub creditor_bic: String,
    /// `CRTBNM` (optional).
    pub creditor_bank_name: String,
    /// `CRTTYP`: `C` or `P`; `P` in a payroll run.
    pub creditor_type: String,
    /// `NUSAGE`
    pub remittance: String,
    /// `BUSNAR` (optional).
    pub purpose: String,
}

/// One chunk as sent: the `BATCH` header and its `ITEM`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// Decides `FUNC` and `BATTYP`.
    pub function: BatchFunction,
    /// `YURREF`: the chunk's business reference, identical on every resend.
    pub reference: String,
    /// `BATREF`: the whole batch's reference.
    pub batch_reference: String,
    /// `DBTACC`
    pub debtor_account: String,
    /// `CCYNBR`
    pub currency_code: String,
    /// `EPTDAT`: `yyyyMMdd`.
    pub execution_date: String,
    /// `TOTNUM`: the number of `ITEM`s, decimal.
    pub item_count: String,
    /// `TOTAMT`: the sum of the items' `TRSAMT`, decimal major units.
    pub control_sum: String,
    pub items: Vec<BatchItemRequest>,
}

/// A `SUMMARY` block: where a chunk stands as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchSummary {
    /// `YURREF`: the chunk's reference.
    pub reference: String,
    /// `BATREF`: empty for an unknown chunk.
    pub batch_reference: String,
    /// `REQSTS`: `ACC` while items are processed, `FIN` when finished;
    /// empty for an unknown chunk.
    pub request_status: String,
    /// `FINFLG`: [`FINFLG_YES`] when every item is final.
    pub finished: String,
    /// `TOTNUM`, `SUCNUM`, `FALNUM`: items in all, succeeded, failed.
    pub item_count: String,
    pub success_count: String,
    pub failed_count: String,
    /// `ERRCOD`: [`ERR_NOT_FOUND`] for an unknown chunk.
    pub error_code: String,
    /// `ERRTXT`
    pub error_text: String,
    /// `BNKREF`: the bank's own id of the chunk.
    pub bank_ref: String,
}

impl BatchSummary {
    /// The answer for a chunk reference the bank does not know.
    pub fn not_found(reference: &str, text: &str) -> BatchSummary {
        BatchSummary {
            reference: reference.to_owned(),
            error_code: ERR_NOT_FOUND.to_owned(),
            error_text: text.to_owned(),
            ..BatchSummary::default()
        }
    }

    /// Whether this summary says the bank knows no such chunk.
    pub fn is_not_found(&self) -> bool {
        self.error_code == ERR_NOT_FOUND && self.request_status.is_empty()
    }
}

/// A decoded batch answer: the request-level status, the chunk's summary
/// (absent when the request was refused) and the item results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResponse {
    pub func: String,
    pub serial: String,
    pub ret_code: String,
    /// Empty when the bank sent no `RETMSG`.
    pub ret_msg: String,
    pub summary: Option<BatchSummary>,
    /// One per `DETAIL` block, `reference` holding the `ITMREF`; always
    /// empty in a submit answer.
    pub items: Vec<PaymentResult>,
}

impl BatchResponse {
    /// Whether the bank accepted the request (`RETCODE` = `0`).
    pub fn is_ok(&self) -> bool {
        self.ret_code == super::RET_OK
    }
}

fn summary_block(s: &BatchSummary) -> Block {
    Block::new(BLOCK_SUMMARY)
        .with(FIELD_YURREF, s.reference.as_str())
        .with(FIELD_BATREF, s.batch_reference.as_str())
        .with(FIELD_REQSTS, s.request_status.as_str())
        .with(FIELD_FINFLG, s.finished.as_str())
        .with(FIELD_TOTNUM, s.item_count.as_str())
        .with(FIELD_SUCNUM, s.success_count.as_str())
        .with(FIELD_FALNUM, s.failed_count.as_str())
        .with(FIELD_ERRCOD, s.error_code.as_str())
        .with(FIELD_ERRTXT, s.error_text.as_str())
        .with(FIELD_BNKREF, s.bank_ref.as_str())
}

/// `YURREF` and `REQSTS` are required (an unknown chunk has an empty
/// `REQSTS`); the rest may be left out and read as empty.
fn read_summary(fields: &Fields<'_>) -> Result<BatchSummary, MessageError> {
    let optional = |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
    Ok(BatchSummary {
        reference: fields.required(FIELD_YURREF)?,
        batch_reference: optional(FIELD_BATREF)?,
        request_status: fields.required(FIELD_REQSTS)?,
        finished: optional(FIELD_FINFLG)?,
        item_count: optional(FIELD_TOTNUM)?,
        success_count: optional(FIELD_SUCNUM)?,
        failed_count: optional(FIELD_FALNUM)?,
        error_code: optional(FIELD_ERRCOD)?,
        error_text: optional(FIELD_ERRTXT)?,
        bank_ref: optional(FIELD_BNKREF)?,
    })
}

fn detail_block(r: &PaymentResult) -> Block {
    Block::new(BLOCK_DETAIL)
        .with(FIELD_ITMREF, r.reference.as_str())
        .with(FIELD_REQSTS, r.request_status.as_str())
        .with(FIELD_RTNFLG, r.result_flag.as_str())
        .with(FIELD_ERRCOD, r.error_code.as_str())
        .with(FIELD_ERRTXT, r.error_text.as_str())
        .with(FIELD_BNKREF, r.bank_ref.as_str())
}

/// `ITMREF` and `REQSTS` are required; the rest read as empty when absent.
fn read_detail(fields: &Fields<'_>) -> Result<PaymentResult, MessageError> {
    let optional = |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
    Ok(PaymentResult {
        reference: fields.required(FIELD_ITMREF)?,
        request_status: fields.required(FIELD_REQSTS)?,
        result_flag: optional(FIELD_RTNFLG)?,
        error_code: optional(FIELD_ERRCOD)?,
        error_text: optional(FIELD_ERRTXT)?,
        bank_ref: optional(FIELD_BNKREF)?,
    })
}

fn item_block(item: &BatchItemRequest) -> Block {
    let mut block = Block::new(BLOCK_ITEM)
        .with(FIELD_ITMREF, item.reference.as_str())
        .with(FIELD_TRSAMT, item.amount.as_str())
        .with(FIELD_CRTACC, item.creditor_account.as_str())
        .with(FIELD_CRTNAM, item.creditor_name.as_str());
    for (field, text) in [
        (FIELD_CRTBNK, &item.creditor_bank_code),
        (FIELD_CRTBIC, &item.creditor_bic),
        (FIELD_CRTBNM, &item.creditor_bank_name),
    ] {
        if !text.is_empty() {
            block = block.with(field, text.as_str());
        }
    }
    block = block
        .with(FIELD_CRTTYP, item.creditor_type.as_str())
        .with(FIELD_NUSAGE, item.remittance.as_str());
    if !item.purpose.is_empty() {
        block = block.with(FIELD_BUSNAR, item.purpose.as_str());
    }
    block
}

fn read_item(fields: &Fields<'_>) -> Result<BatchItemRequest, MessageError> {
    let optional = |name: &str| Ok::<_, MessageError>(fields.optional(name)?.unwrap_or_default());
    Ok(BatchItemRequest {
        reference: fields.required(FIELD_ITMREF)?,
        amount: fields.required(FIELD_TRSAMT)?,
        creditor_account: fields.required(FIELD_CRTACC)?,
        creditor_name: fields.required(FIELD_CRTNAM)?,
        creditor_bank_code: optional(FIELD_CRTBNK)?,
        creditor_bic: optional(FIELD_CRTBIC)?,
        creditor_bank_name: optional(FIELD_CRTBNM)?,
        creditor_type: fields.required(FIELD_CRTTYP)?,
        remittance: fields.required(FIELD_NUSAGE)?,
        purpose: optional(FIELD_BUSNAR)?,
    })
}

/// The `RETCODE`, `RETMSG` and function of a response packet.
fn response_head_of(p: &Packet) -> Result<(String, String), MessageError> {
    let ret_code = p
        .head
        .ret_code
        .clone()
        .ok_or_else(|| MessageError::MissingHeadField {
            field: "RETCODE".to_owned(),
        })?;
    Ok((ret_code, p.head.ret_msg.clone().unwrap_or_default()))
}

// ---------------------------------------------------------------------------
// SubmitBatch / SubmitPayroll
// ---------------------------------------------------------------------------

/// A `SubmitBatch` or `SubmitPayroll` request (by `batch.function`): the
/// `BATCH` header, then one `ITEM` per item in order. Checks nothing (see
/// [`check_batch_header`] and [`check_batch_item`]) so that tests can check
/// the bank side; `BATTYP` is always the function's.
pub fn submit_batch_request(login: &str, serial: &str, batch: &BatchRequest) -> Packet {
    let header = Block::new(BLOCK_BATCH)
        .with(FIELD_YURREF, batch.reference.as_str())
        .with(FIELD_BATREF, batch.batch_reference.as_str())
        .with(FIELD_DBTACC, batch.debtor_account.as_str())
        .with(FIELD_CCYNBR, batch.currency_code.as_str())
        .with(FIELD_EPTDAT, batch.execution_date.as_str())
        .with(FIELD_TOTNUM, batch.item_count.as_str())
        .with(FIELD_TOTAMT, batch.control_sum.as_str())
        .with(FIELD_BATTYP, batch.function.type_code());
    let mut body = Vec::with_capacity(batch.items.len() + 1);
    body.push(header);
    body.extend(batch.items.iter().map(item_block));
    Packet {
        head: request_head(batch.function.code(), login, serial),
        body,
    }
}

/// Reads a `SubmitBatch` or `SubmitPayroll` request: one `BATCH` block whose
/// `BATTYP` matches the function, then 1 to [`MAX_BATCH_ITEMS`] `ITEM`s.
/// Whether `TOTNUM` and `TOTAMT` agree with the items is the bank's check.
pub fn parse_submit_batch_request(p: &Packet) -> Result<BatchRequest, MessageError> {
    let function =
        BatchFunction::of_code(&p.head.func).ok_or_else(|| MessageError::WrongFunction {
            expected: format!("{FUNC_SUBMIT_BATCH} or {FUNC_SUBMIT_PAYROLL}"),
            found: clip(&p.head.func),
        })?;
    let Some((header, items)) = p.body.split_first() else {
        return Err(MessageError::BlockCount {
            block: BLOCK_BATCH.to_owned(),
            found: 0,
        });
    };
    if header.name != BLOCK_BATCH {
        return Err(MessageError::UnexpectedBlock {
            expected: BLOCK_BATCH.to_owned(),
            found: clip(&header.name),
            index: 1,
        });
    }
    let fields = Fields {
        block: header,
        index: 1,
    };
    let kind = fields.required(FIELD_BATTYP)?;
    if kind != function.type_code() {
        return Err(MessageError::BatchKindMismatch {
            func: function.code().to_owned(),
            kind: clip(&kind),
        });
    }
    if items.is_empty() {
        return Err(MessageError::BlockCount {
            block: BLOCK_ITEM.to_owned(),
            found: 0,
        });
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(MessageError::TooManyRecords {
            count: items.len(),
            max: MAX_BATCH_ITEMS,
        });
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(ordinal, block)| {
            let index = ordinal + 2;
            if block.name != BLOCK_ITEM {
                return Err(MessageError::UnexpectedBlock {
                    expected: BLOCK_ITEM.to_owned(),
                    found: clip(&block.name),
                    index,
                });
            }
            read_item(&Fields { block, index })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BatchRequest {
        function,
        reference: fields.required(FIELD_YURREF)?,
        batch_reference: fields.required(FIELD_BATREF)?,
        debtor_account: fields.required(FIELD_DBTACC)?,
        currency_code: fields.required(FIELD_CCYNBR)?,
        execution_date: fields.required(FIELD_EPTDAT)?,
        item_count: fields.required(FIELD_TOTNUM)?,
        control_sum: fields.required(FIELD_TOTAMT)?,
        items,
    })
}

/// A submit answer for `function`: the request status and, when the bank
/// has a chunk to report (accepted, or a duplicate reference), its `SUMMARY`.
pub fn submit_batch_response(
    function: BatchFunction,
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    summary: Option<&BatchSummary>,
) -> Packet {
    Packet {
        head: response_head(function.code(), serial, ret_code, ret_msg),
        body: summary.map(summary_block).into_iter().collect(),
    }
}

/// Reads a submit answer of `function`: at most one `SUMMARY` block, no
/// other block.
pub fn parse_submit_batch(
    function: BatchFunction,
    p: &Packet,
) -> Result<BatchResponse, MessageError> {
    expect_function(p, function.code())?;
    let (ret_code, ret_msg) = response_head_of(p)?;
    if p.body.len() > 1 {
        return Err(MessageError::TooManyRecords {
            count: p.body.len(),
            max: 1,
        });
    }
    let summary = match p.body.first() {
        None => None,
        Some(block) if block.name == BLOCK_SUMMARY => {
            Some(read_summary(&Fields { block, index: 1 })?)
        }
        Some(block) => {
            return Err(MessageError::UnexpectedBlock {
                expected: BLOCK_SUMMARY.to_owned(),
                found: clip(&block.name),
                index: 1,
            })
        }
    };
    Ok(BatchResponse {
        func: p.head.func.clone(),
        serial: p.head.serial.clone(),
        ret_code,
        ret_msg,
        summary,
        items: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// QueryBatch
// ---------------------------------------------------------------------------

/// A `QueryBatch` request: one `QUERY` block with the chunk's `YURREF`.
pub fn query_batch_request(login: &str, serial: &str, reference: &str) -> Packet {
    Packet {
        head: request_head(FUNC_QUERY_BATCH, login, serial),
        body: vec![Block::new(BLOCK_QUERY).with(FIELD_YURREF, reference)],
    }
}

/// Reads a `QueryBatch` request: exactly one `QUERY` block with a `YURREF`.
pub fn parse_query_batch_request(p: &Packet) -> Result<String, MessageError> {
    expect_function(p, FUNC_QUERY_BATCH)?;
    let [block] = p.body.as_slice() else {
        return Err(MessageError::BlockCount {
            block: BLOCK_QUERY.to_owned(),
            found: p.body.len(),
        });
    };
    if block.name != BLOCK_QUERY {
        return Err(MessageError::UnexpectedBlock {
            expected: BLOCK_QUERY.to_owned(),
            found: clip(&block.name),
            index: 1,
        });
    }
    Fields { block, index: 1 }.required(FIELD_YURREF)
}

/// A `QueryBatch` answer: the request status, the chunk's `SUMMARY` (when
/// the request was taken) and one `DETAIL` per item (none for an unknown
/// chunk).
pub fn query_batch_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    summary: Option<&BatchSummary>,
    items: &[PaymentResult],
) -> Packet {
    let mut body = Vec::with_capacity(items.len() + 1);
    body.extend(summary.map(summary_block));
    body.extend(items.iter().map(detail_block));
    Packet {
        head: response_head(FUNC_QUERY_BATCH, serial, ret_code, ret_msg),
        body,
    }
}

/// Reads a `QueryBatch` answer: an accepted one (`RETCODE` `0`) starts
/// with exactly one `SUMMARY`, then at most [`MAX_BATCH_ITEMS`] `DETAIL`s; a
/// refused one may carry nothing. A `SUMMARY` anywhere but first is refused.
pub fn parse_query_batch(p: &Packet) -> Result<BatchResponse, MessageError> {
    expect_function(p, FUNC_QUERY_BATCH)?;
    let (ret_code, ret_msg) = response_head_of(p)?;
    let mut summary = None;
    let mut items = Vec::new();
    for (ordinal, block) in p.body.iter().enumerate() {
        let index = ordinal + 1;
        let fields = Fields { block, index };
        match block.name.as_str() {
            BLOCK_SUMMARY if index == 1 => summary = Some(read_summary(&fields)?),
            BLOCK_DETAIL if summary.is_some() => items.push(read_detail(&fields)?),
            _ => {
                return Err(MessageError::UnexpectedBlock {
                    expected: if summary.is_some() {
                        BLOCK_DETAIL
                    } else {
                        BLOCK_SUMMARY
                    }
                    .to_owned(),
                    found: clip(&block.name),
                    index,
                })
            }
        }
    }
    if summary.is_none() && ret_code == super::RET_OK {
        return Err(MessageError::BlockCount {
            block: BLOCK_SUMMARY.to_owned(),
            found: 0,
        });
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(MessageError::TooManyRecords {
            count: items.len(),
            max: MAX_BATCH_ITEMS,
        });
    }
    Ok(BatchResponse {
        func: p.head.func.clone(),
        serial: p.head.serial.clone(),
        ret_code,
        ret_msg,
        summary,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cn_xml::messages::{REQSTS_ACCEPTED, REQSTS_FINISHED, RET_OK, RTNFLG_FAILED};
    use crate::cn_xml::{decode, encode, Limits};

    fn item(reference: &str) -> BatchItemRequest {
        BatchItemRequest {
            reference: reference.into(),
            amount: "8500.00".into(),
            creditor_account: "6222020200112233".into(),
            creditor_name: "张伟".into(),
            creditor_bank_code: String::new(),
            creditor_bic: String::new(),
            creditor_bank_name: "中国工商银行上海分行".into(),
            creditor_type: CRTTYP_PERSONAL.into(),
            remittance: "十一月工资".into(),
            purpose: String::new(),
        }
    }

    fn batch(function: BatchFunction) -> BatchRequest {
        BatchRequest {
            function,
            reference: "BDC01H7K2M9Q4X8".into(),
            batch_reference: "BDB01H7K2M9Q4X8".into(),
            debtor_account: "755900012310001".into(),
            currency_code: "10".into(),
            execution_date: "20261127".into(),
            item_count: "2".into(),
            control_sum: "17000.00".into(),
            items: vec![item("I1"), item("I2")],
        }
    }

    fn wire(packet: &Packet) -> Packet {
        decode(&encode(packet).unwrap(), &Limits::default()).unwrap()
    }

    #[test]
    fn both_submit_functions_round_trip_through_the_wire() {
        for function in [BatchFunction::Supplier, BatchFunction::Payroll] {
            let packet = submit_batch_request("DEMO01", "R1", &batch(function));
            assert_eq!(packet.head.func, function.code());
            let back = wire(&packet);
            assert_eq!(parse_submit_batch_request(&back).unwrap(), batch(function));
            assert!(
                back.body[1].get(FIELD_CRTBNK).is_none(),
                "empty optional left out"
            );
        }
    }

    #[test]
    fn a_kind_that_contradicts_the_function_is_refused() {
        let mut packet = submit_batch_request("L", "R", &batch(BatchFunction::Payroll));
        packet.head.func = FUNC_SUBMIT_BATCH.into();
        assert_eq!(
            parse_submit_batch_request(&packet),
            Err(MessageError::BatchKindMismatch {
                func: FUNC_SUBMIT_BATCH.into(),
                kind: BATTYP_PAYROLL.into(),
            })
        );
        packet.head.func = "SubmitPayment".into();
        assert!(matches!(
            parse_submit_batch_request(&packet),
            Err(MessageError::WrongFunction { .. })
        ));
    }

    #[test]
    fn item_counts_outside_one_to_the_maximum_are_refused() {
        let mut full = batch(BatchFunction::Supplier);
        full.items = (0..MAX_BATCH_ITEMS)
            .map(|i| item(&format!("I{i}")))
            .collect();
        let packet = submit_batch_request("L", "R", &full);
        assert_eq!(
            parse_submit_batch_request(&packet).unwrap().items.len(),
            500
        );
        full.items.push(item("ONE-MORE"));
        assert_eq!(
            parse_submit_batch_request(&submit_batch_request("L", "R", &full)),
            Err(MessageError::TooManyRecords {
                count: MAX_BATCH_ITEMS + 1,
                max: MAX_BATCH_ITEMS
            })
        );
        full.items.clear();
        assert!(matches!(
            parse_submit_batch_request(&submit_batch_request("L", "R", &full)),
            Err(MessageError::BlockCount { found: 0, .. })
        ));
    }

    #[test]
    fn blocks_out_of_place_are_refused_naming_their_position() {
        let mut packet = submit_batch_request("L", "R", &batch(BatchFunction::Supplier));
        packet.body.swap(0, 1);
        assert!(matches!(
            parse_submit_batch_request(&packet),
            Err(MessageError::UnexpectedBlock { index: 1, .. })
        ));
        let mut packet = submit_batch_request("L", "R", &batch(BatchFunction::Supplier));
        let header = packet.body[0].clone();
        packet.body.push(header);
        assert!(matches!(
            parse_submit_batch_request(&packet),
            Err(MessageError::UnexpectedBlock { index: 4, .. })
        ));
        let mut packet = submit_batch_request("L", "R", &batch(BatchFunction::Supplier));
        packet.body[2]
            .fields
            .retain(|(name, _)| name != FIELD_TRSAMT);
        assert_eq!(
            parse_submit_batch_request(&packet),
            Err(MessageError::MissingField {
                block: BLOCK_ITEM.into(),
                index: 3,
                field: FIELD_TRSAMT.into()
            })
        );
    }

    #[test]
    fn item_problems_are_all_named_relative_to_the_item() {
        let mut bad = item("R".repeat(31).as_str());
        bad.creditor_name = "测".repeat(31);
        bad.remittance = "工资😀".into();
        bad.creditor_type = "C".into();
        bad.amount = String::new();
        let problems = check_batch_item(BatchFunction::Payroll, &bad).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "reference",
                "amount",
                "creditor.name",
                "remittance",
                "creditor.type"
            ]
        );
        assert!(matches!(
            problems[2].error,
            FieldError::TooLong {
                bytes: 62,
                max_bytes: 60,
                ..
            }
        ));
        assert!(matches!(
            problems[3].error,
            FieldError::Unencodable { ch: '😀', .. }
        ));
        // A corporate creditor is fine in a supplier run.
        let mut corporate = item("OK");
        corporate.creditor_type = "C".into();
        assert!(check_batch_item(BatchFunction::Supplier, &corporate).is_ok());
        assert!(check_batch_item(BatchFunction::Payroll, &item("OK")).is_ok());
    }

    #[test]
    fn header_fields_are_checked_in_gbk_bytes() {
        assert!(check_batch_header(&batch(BatchFunction::Supplier)).is_ok());
        let mut long = batch(BatchFunction::Supplier);
        long.batch_reference = "B".repeat(MAX_BATREF_BYTES + 1);
        assert!(matches!(
            check_batch_header(&long),
            Err(FieldError::TooLong { max_bytes: 30, .. })
        ));
        let mut empty = batch(BatchFunction::Supplier);
        empty.control_sum = String::new();
        assert_eq!(
            check_batch_header(&empty),
            Err(FieldError::Empty {
                field: FIELD_TOTAMT.into()
            })
        );
        assert!(check_batch_field(FIELD_TOTNUM, "1234567").is_err());
        assert!(check_batch_field(FIELD_CRTNAM, &"测".repeat(30)).is_ok());
    }

    fn summary() -> BatchSummary {
        BatchSummary {
            reference: "BDC1".into(),
            batch_reference: "BDB1".into(),
            request_status: REQSTS_FINISHED.into(),
            finished: FINFLG_YES.into(),
            item_count: "2".into(),
            success_count: "1".into(),
            failed_count: "1".into(),
            error_code: String::new(),
            error_text: String::new(),
            bank_ref: "SIMB000001".into(),
        }
    }

    #[test]
    fn submit_answer_carries_at_most_one_summary() {
        let packet = submit_batch_response(
            BatchFunction::Payroll,
            "R1",
            "DUPLICATE_REFERENCE",
            "重复",
            Some(&summary()),
        );
        let parsed = parse_submit_batch(BatchFunction::Payroll, &wire(&packet)).unwrap();
        assert_eq!(parsed.summary, Some(summary()));
        assert!(parsed.items.is_empty());
        assert!(matches!(
            parse_submit_batch(BatchFunction::Supplier, &packet),
            Err(MessageError::WrongFunction { .. })
        ));
        let mut two = packet.clone();
        two.body.push(two.body[0].clone());
        assert!(matches!(
            parse_submit_batch(BatchFunction::Payroll, &two),
            Err(MessageError::TooManyRecords { count: 2, max: 1 })
        ));
        let refused = submit_batch_response(
            BatchFunction::Supplier,
            "R1",
            "BAD_REQUEST",
            "格式错误",
            None,
        );
        let parsed = parse_submit_batch(BatchFunction::Supplier, &refused).unwrap();
        assert!(!parsed.is_ok());
        assert_eq!(parsed.summary, None);
    }

    #[test]
    fn query_answer_round_trips_and_needs_its_summary_first() {
        let items = vec![
            PaymentResult {
                reference: "I1".into(),
                request_status: REQSTS_FINISHED.into(),
                result_flag: RTNFLG_FAILED.into(),
                error_code: "NAME_MISMATCH".into(),
                error_text: "户名不符".into(),
                bank_ref: String::new(),
            },
            PaymentResult {
                reference: "I2".into(),
                request_status: REQSTS_ACCEPTED.into(),
                ..PaymentResult::default()
            },
        ];
        let packet = query_batch_response("Q1", RET_OK, "", Some(&summary()), &items);
        let parsed = parse_query_batch(&wire(&packet)).unwrap();
        assert_eq!(parsed.summary, Some(summary()));
        assert_eq!(parsed.items, items);

        let no_summary = query_batch_response("Q1", RET_OK, "", None, &items);
        assert!(matches!(
            parse_query_batch(&no_summary),
            Err(MessageError::UnexpectedBlock { index: 1, .. })
        ));
        let empty = query_batch_response("Q1", RET_OK, "", None, &[]);
        assert!(matches!(
            parse_query_batch(&empty),
            Err(MessageError::BlockCount { found: 0, .. })
        ));
        let mut twice = packet.clone();
        twice.body.push(twice.body[0].clone());
        assert!(matches!(
            parse_query_batch(&twice),
            Err(MessageError::UnexpectedBlock { index: 4, .. })
        ));
        let not_found = BatchSummary::not_found("BDC9", "批次不存在");
        let packet = query_batch_response("Q1", RET_OK, "", Some(&not_found), &[]);
        assert!(parse_query_batch(&packet)
            .unwrap()
            .summary
            .unwrap()
            .is_not_found());
    }

    #[test]
    fn query_request_takes_exactly_one_reference() {
        let packet = query_batch_request("L", "Q", "BDC1");
        assert_eq!(parse_query_batch_request(&wire(&packet)).unwrap(), "BDC1");
        let mut two = packet.clone();
        two.body.push(two.body[0].clone());
        assert!(matches!(
            parse_query_batch_request(&two),
            Err(MessageError::BlockCount { found: 2, .. })
        ));
    }
}
