//! Typed `cn-xml` messages, one group per function code.
//!
//! Each function has request builders and parsers for both directions: the
//! connector (`banks`) builds requests and parses responses, the simulator
//! (`banksim`) parses requests and builds responses. Everything stays the
//! bank's text here; amounts, dates and currency codes are interpreted by the
//! connector, which knows the bank's quirks.
//!
//! Layout: constants (function codes, status codes, tag names), the record
//! types, then `ListAccounts`, then `QueryBalance`, then the shared helpers
//! that read blocks strictly (a missing required field or a repeated field is
//! an error naming the block and field; block indices are 1-based, as in the
//! paths of [`super::DecodeError`]). The transaction-detail functions
//! (`QueryHistory`, `QueryDayBalance`) live in the child module `history`
//! and are re-exported here, as are the payment functions
//! (`SubmitPayment`, `QueryPayment`) of the child module `payment` and the
//! batch functions (`SubmitBatch`, `SubmitPayroll`, `QueryBatch`) of the
//! child module `batch`, so every message is reached as
//! `cn_xml::messages::*`.

mod batch;
mod history;
mod payment;

pub use batch::*;
pub use history::*;
pub use payment::*;

use super::{clip, Block, Head, Packet};

/// Function code: the accounts this login may use.
pub const FUNC_LIST_ACCOUNTS: &str = "ListAccounts";
/// Function code: balances of up to [`MAX_ACCOUNTS_PER_BALANCE_QUERY`] accounts.
pub const FUNC_QUERY_BALANCE: &str = "QueryBalance";
/// `DATATYPE` of every request: 2 = XML.
pub const DATA_TYPE_XML: &str = "2";

/// `RETCODE`: the request was accepted (records carry their own status).
pub const RET_OK: &str = "0";
pub const RET_LOGIN_FAILED: &str = "LOGIN_FAILED";
pub const RET_NO_PERMISSION: &str = "NO_PERMISSION";
pub const RET_BAD_REQUEST: &str = "BAD_REQUEST";
/// The front machine is overloaded; the request may be retried later.
pub const RET_SYSTEM_BUSY: &str = "SYSTEM_BUSY";
pub const RET_SYSTEM_ERROR: &str = "SYSTEM_ERROR";
/// The request's signature (HTTP header `X-Signature`) is missing or does
/// not verify under the client certificate the bank holds; nothing was done.
pub const RET_SIGNATURE_INVALID: &str = "SIGNATURE_INVALID";

/// `RECSTS` of a record that succeeded.
pub const REC_SUCCESS: &str = "S";
/// `RECSTS` of a record that failed; the reason is in `RECMSG`.
pub const REC_FAILED: &str = "F";

/// The bank's documented maximum of `ACCOUNT` blocks in one `QueryBalance`.
pub const MAX_ACCOUNTS_PER_BALANCE_QUERY: usize = 50;

/// Block names.
pub const BLOCK_ACCOUNT: &str = "ACCOUNT";
pub const BLOCK_BALANCE: &str = "BALANCE";

/// Field names.
pub const FIELD_ACCNO: &str = "ACCNO";
pub const FIELD_ACCNAM: &str = "ACCNAM";
pub const FIELD_CCYNBR: &str = "CCYNBR";
pub const FIELD_BRANCH: &str = "BRANCH";
pub const FIELD_ACCSTS: &str = "ACCSTS";
pub const FIELD_ONLBAL: &str = "ONLBAL";
pub const FIELD_AVLBAL: &str = "AVLBAL";
pub const FIELD_BALDAT: &str = "BALDAT";
pub const FIELD_BALTIM: &str = "BALTIM";
pub const FIELD_RECSTS: &str = "RECSTS";
pub const FIELD_RECMSG: &str = "RECMSG";

/// Why a decoded packet is not the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("packet is for function {found:?}; expected {expected:?}")]
    WrongFunction { expected: String, found: String },
    /// A response without `RETCODE` cannot say whether the request was
    /// accepted.
    #[error("HEAD/{field} is missing; a response must carry it")]
    MissingHeadField { field: String },
    #[error("BODY/{block}[{index}] has no {field} field")]
    MissingField {
        block: String,
        index: usize,
        field: String,
    },
    #[error("BODY/{block}[{index}] has more than one {field} field")]
    DuplicateField {
        block: String,
        index: usize,
        field: String,
    },
    #[error("BODY block {index} is <{found}>; expected <{expected}>")]
    UnexpectedBlock {
        expected: String,
        found: String,
        index: usize,
    },
    #[error("balance request names {count} accounts; at most {max} are allowed")]
    TooManyAccounts { count: usize, max: usize },
    #[error("balance request names no account")]
    NoAccounts,
    /// A request that takes exactly one block of a kind had another count.
    #[error("request has {found} <{block}> blocks; expected exactly one")]
    BlockCount { block: String, found: usize },
    /// An accepted `QueryHistory` answer must end with its `PAGE` block.
    #[error(
        "accepted history answer has no <PAGE> block; expected exactly one, after the last <TRANS>"
    )]
    MissingPage,
    #[error("BODY block {index} is a second <PAGE>, or a block after <PAGE>; expected <PAGE> once, as the last block")]
    MisplacedPage { index: usize },
    #[error("answer has {count} records; the family allows at most {max} per page")]
    TooManyRecords { count: usize, max: usize },
    /// A batch submission whose header `BATTYP` is not its function's.
    #[error(
        "batch request for function {func:?} has BATTYP {kind:?}; expected the function's own kind"
    )]
    BatchKindMismatch { func: String, kind: String },
}

/// One account to query, with an optional currency filter (`CCYNBR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceQueryItem {
    pub acc_no: String,
    pub currency_code: Option<String>,
}

/// An `ACCOUNT` record of a `ListAccounts` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// `ACCNO`
    pub acc_no: String,
    /// `ACCNAM`, usually Chinese.
    pub name: String,
    /// `CCYNBR`, the bank's currency code (`10` = CNY).
    pub currency_code: String,
    /// `BRANCH`, the branch name.
    pub branch: String,
    /// `ACCSTS`: `A` active, `C` closed.
    pub status: String,
}

/// A `BALANCE` record of a `QueryBalance` response.
///
/// When `rec_status` is not [`REC_SUCCESS`] the bank may leave out the
/// balance fields; they are then empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRecord {
    /// `ACCNO`
    pub acc_no: String,
    /// `CCYNBR`
    pub currency_code: String,
    /// `ONLBAL`: booked balance, decimal major units, `-` when negative.
    pub booked: String,
    /// `AVLBAL`: available balance, same format.
    pub available: String,
    /// `BALDAT`: `yyyyMMdd` in the bank's time zone.
    pub date: String,
    /// `BALTIM`: `HHmmss` in the bank's time zone.
    pub time: String,
    /// `RECSTS`: `S` or `F`.
    pub rec_status: String,
    /// `RECMSG`: the reason when `F`; may be empty.
    pub rec_msg: String,
}

/// A decoded response: the request-level status and the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<T> {
    pub func: String,
    pub serial: String,
    pub ret_code: String,
    /// Empty when the bank sent no `RETMSG`.
    pub ret_msg: String,
    pub records: Vec<T>,
}

impl<T> Response<T> {
    /// Whether the bank accepted the request (`RETCODE` = `0`). Records can
    /// still fail one by one.
    pub fn is_ok(&self) -> bool {
        self.ret_code == RET_OK
    }
}

fn request_head(func: &str, login: &str, serial: &str) -> Head {
    Head {
        func: func.to_owned(),
        login: Some(login.to_owned()),
        password: None,
        data_type: Some(DATA_TYPE_XML.to_owned()),
        serial: serial.to_owned(),
        ret_code: None,
        ret_msg: None,
    }
}

fn response_head(func: &str, serial: &str, ret_code: &str, ret_msg: &str) -> Head {
    Head {
        func: func.to_owned(),
        login: None,
        password: None,
        data_type: None,
        serial: serial.to_owned(),
        ret_code: Some(ret_code.to_owned()),
        ret_msg: Some(ret_msg.to_owned()),
    }
}

/// Fails unless the packet is for function `func`.
pub fn expect_function(p: &Packet, func: &str) -> Result<(), MessageError> {
    if p.head.func == func {
        Ok(())
    } else {
        Err(MessageError::WrongFunction {
            expected: func.to_owned(),
            found: clip(&p.head.func),
        })
    }
}

// ---------------------------------------------------------------------------
// ListAccounts
// ---------------------------------------------------------------------------

/// A `ListAccounts` request; its body is empty.
pub fn list_accounts_request(login: &str, serial: &str) -> Packet {
    Packet {
        head: request_head(FUNC_LIST_ACCOUNTS, login, serial),
        body: Vec::new(),
    }
}

/// A `ListAccounts` response with one `ACCOUNT` block per record.
pub fn list_accounts_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    records: &[AccountRecord],
) -> Packet {
    Packet {
        head: response_head(FUNC_LIST_ACCOUNTS, serial, ret_code, ret_msg),
        body: records
            .iter()
            .map(|r| {
                Block::new(BLOCK_ACCOUNT)
                    .with(FIELD_ACCNO, r.acc_no.as_str())
                    .with(FIELD_ACCNAM, r.name.as_str())
                    .with(FIELD_CCYNBR, r.currency_code.as_str())
                    .with(FIELD_BRANCH, r.branch.as_str())
                    .with(FIELD_ACCSTS, r.status.as_str())
            })
            .collect(),
    }
}

/// Reads a `ListAccounts` response. Every `ACCOUNT` field is required.
pub fn parse_list_accounts(p: &Packet) -> Result<Response<AccountRecord>, MessageError> {
    response(p, FUNC_LIST_ACCOUNTS, BLOCK_ACCOUNT, |fields| {
        Ok(AccountRecord {
            acc_no: fields.required(FIELD_ACCNO)?,
            name: fields.required(FIELD_ACCNAM)?,
            currency_code: fields.required(FIELD_CCYNBR)?,
            branch: fields.required(FIELD_BRANCH)?,
            status: fields.required(FIELD_ACCSTS)?,
        })
    })
}

// ---------------------------------------------------------------------------
// QueryBalance
// ---------------------------------------------------------------------------

/// A `QueryBalance` request with one `ACCOUNT` block per item, in order.
///
/// The caller splits longer lists into chunks of at most
/// [`MAX_ACCOUNTS_PER_BALANCE_QUERY`]; the builder does not refuse a longer
/// list so that tests can check the bank side's refusal.
pub fn balance_request(login: &str, serial: &str, accounts: &[BalanceQueryItem]) -> Packet {
    Packet {
        head: request_head(FUNC_QUERY_BALANCE, login, serial),
        body: accounts
            .iter()
            .map(|item| {
                let block = Block::new(BLOCK_ACCOUNT).with(FIELD_ACCNO, item.acc_no.as_str());
                match &item.currency_code {
                    Some(code) => block.with(FIELD_CCYNBR, code.as_str()),
                    None => block,
                }
            })
            .collect(),
    }
}

/// Reads a `QueryBalance` request: 1 to [`MAX_ACCOUNTS_PER_BALANCE_QUERY`]
/// `ACCOUNT` blocks, each with `ACCNO` and an optional `CCYNBR`.
pub fn parse_balance_request(p: &Packet) -> Result<Vec<BalanceQueryItem>, MessageError> {
    expect_function(p, FUNC_QUERY_BALANCE)?;
    if p.body.is_empty() {
        return Err(MessageError::NoAccounts);
    }
    if p.body.len() > MAX_ACCOUNTS_PER_BALANCE_QUERY {
        return Err(MessageError::TooManyAccounts {
            count: p.body.len(),
            max: MAX_ACCOUNTS_PER_BALANCE_QUERY,
        });
    }
    records(p, BLOCK_ACCOUNT, |fields| {
        Ok(BalanceQueryItem {
            acc_no: fields.required(FIELD_ACCNO)?,
            currency_code: fields.optional(FIELD_CCYNBR)?,
        })
    })
}

/// A `QueryBalance` response with one `BALANCE` block per record; every
/// field is written, empty ones included.
pub fn balance_response(
    serial: &str,
    ret_code: &str,
    ret_msg: &str,
    records: &[BalanceRecord],
) -> Packet {
    Packet {
        head: response_head(FUNC_QUERY_BALANCE, serial, ret_code, ret_msg),
        body: records
            .iter()
            .map(|r| {
                Block::new(BLOCK_BALANCE)
                    .with(FIELD_ACCNO, r.acc_no.as_str())
                    .with(FIELD_CCYNBR, r.currency_code.as_str())
                    .with(FIELD_ONLBAL, r.booked.as_str())
                    .with(FIELD_AVLBAL, r.available.as_str())
                    .with(FIELD_BALDAT, r.date.as_str())
                    .with(FIELD_BALTIM, r.time.as_str())
                    .with(FIELD_RECSTS, r.rec_status.as_str())
                    .with(FIELD_RECMSG, r.rec_msg.as_str())
            })
            .collect(),
    }
}

/// Reads a `QueryBalance` response. `ACCNO` and `RECSTS` are always
/// required; the balance fields (`CCYNBR`, `ONLBAL`, `AVLBAL`, `BALDAT`,
/// `BALTIM`) only when `RECSTS` is `S`, since a failed record may carry
/// nothing but the reason. `RECMSG` is optional.
pub fn parse_balances(p: &Packet) -> Result<Response<BalanceRecord>, MessageError> {
    response(p, FUNC_QUERY_BALANCE, BLOCK_BALANCE, |fields| {
        let acc_no = fields.required(FIELD_ACCNO)?;
        let rec_status = fields.required(FIELD_RECSTS)?;
        let succeeded = rec_status == REC_SUCCESS;
        let balance_field = |name: &str| {
            if succeeded {
                fields.required(name)
            } else {
                Ok(fields.optional(name)?.unwrap_or_default())
            }
        };
        Ok(BalanceRecord {
            acc_no,
            currency_code: balance_field(FIELD_CCYNBR)?,
            booked: balance_field(FIELD_ONLBAL)?,
            available: balance_field(FIELD_AVLBAL)?,
            date: balance_field(FIELD_BALDAT)?,
            time: balance_field(FIELD_BALTIM)?,
            rec_msg: fields.optional(FIELD_RECMSG)?.unwrap_or_default(),
            rec_status,
        })
    })
}

// ---------------------------------------------------------------------------
// shared readers
// ---------------------------------------------------------------------------

/// A block being read as record number `index` (1-based).
struct Fields<'a> {
    block: &'a Block,
    index: usize,
}

impl Fields<'_> {
    fn optional(&self, field: &str) -> Result<Option<String>, MessageError> {
        if self.block.count(field) > 1 {
            return Err(MessageError::DuplicateField {
                block: clip(&self.block.name),
                index: self.index,
                field: field.to_owned(),
            });
        }
        Ok(self.block.get(field).map(str::to_owned))
    }

    fn required(&self, field: &str) -> Result<String, MessageError> {
        self.optional(field)?
            .ok_or_else(|| MessageError::MissingField {
                block: clip(&self.block.name),
                index: self.index,
                field: field.to_owned(),
            })
    }
}

fn records<T>(
    p: &Packet,
    block_name: &str,
    read: impl Fn(&Fields<'_>) -> Result<T, MessageError>,
) -> Result<Vec<T>, MessageError> {
    p.body
        .iter()
        .enumerate()
        .map(|(ordinal, block)| {
            let index = ordinal + 1;
            if block.name != block_name {
                return Err(MessageError::UnexpectedBlock {
                    expected: block_name.to_owned(),
                    found: clip(&block.name),
                    index,
                });
            }
            read(&Fields { block, index })
        })
        .collect()
}

fn response<T>(
    p: &Packet,
    func: &str,
    block_name: &str,
    read: impl Fn(&Fields<'_>) -> Result<T, MessageError>,
) -> Result<Response<T>, MessageError> {
    expect_function(p, func)?;
    let ret_code = p
        .head
        .ret_code
        .clone()
        .ok_or_else(|| MessageError::MissingHeadField {
            field: "RETCODE".to_owned(),
        })?;
    Ok(Response {
        func: p.head.func.clone(),
        serial: p.head.serial.clone(),
        ret_code,
        ret_msg: p.head.ret_msg.clone().unwrap_or_default(),
        records: records(p, block_name, read)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(acc_no: &str, rec_status: &str) -> BalanceRecord {
        BalanceRecord {
            acc_no: acc_no.to_owned(),
            currency_code: "10".to_owned(),
            booked: "-80.00".to_owned(),
            available: "1234.5000".to_owned(),
            date: "20240131".to_owned(),
            time: "235959".to_owned(),
            rec_status: rec_status.to_owned(),
            rec_msg: String::new(),
        }
    }

    #[test]
    fn balance_response_round_trips_through_parse() {
        let records = vec![balance("755900012310001", REC_SUCCESS)];
        let packet = balance_response("R1", RET_OK, "", &records);
        let parsed = parse_balances(&packet).unwrap();
        assert!(parsed.is_ok());
        assert_eq!(parsed.serial, "R1");
        assert_eq!(parsed.records, records);
    }

    #[test]
    fn failed_balance_record_may_omit_balance_fields() {
        let block = Block::new(BLOCK_BALANCE)
            .with(FIELD_ACCNO, "1")
            .with(FIELD_RECSTS, REC_FAILED)
            .with(FIELD_RECMSG, "账户不存在");
        let packet = Packet {
            head: response_head(FUNC_QUERY_BALANCE, "R1", RET_OK, ""),
            body: vec![block],
        };
        let parsed = parse_balances(&packet).unwrap();
        assert_eq!(parsed.records[0].booked, "");
        assert_eq!(parsed.records[0].rec_msg, "账户不存在");
    }

    #[test]
    fn successful_balance_record_without_booked_balance_is_refused() {
        let mut packet =
            balance_response("R1", RET_OK, "", &[balance("1", "S"), balance("2", "S")]);
        packet.body[1]
            .fields
            .retain(|(name, _)| name != FIELD_ONLBAL);
        assert_eq!(
            parse_balances(&packet),
            Err(MessageError::MissingField {
                block: BLOCK_BALANCE.to_owned(),
                index: 2,
                field: FIELD_ONLBAL.to_owned(),
            })
        );
    }

    #[test]
    fn repeated_field_is_ambiguous_and_refused() {
        let mut packet = balance_response("R1", RET_OK, "", &[balance("1", "S")]);
        packet.body[0]
            .fields
            .push((FIELD_ACCNO.to_owned(), "2".to_owned()));
        assert!(matches!(
            parse_balances(&packet),
            Err(MessageError::DuplicateField { index: 1, .. })
        ));
    }

    #[test]
    fn response_of_another_function_is_refused() {
        let packet = list_accounts_response("R1", RET_OK, "", &[]);
        assert_eq!(
            parse_balances(&packet),
            Err(MessageError::WrongFunction {
                expected: FUNC_QUERY_BALANCE.to_owned(),
                found: FUNC_LIST_ACCOUNTS.to_owned(),
            })
        );
    }

    #[test]
    fn response_without_retcode_is_refused() {
        let mut packet = list_accounts_response("R1", RET_OK, "", &[]);
        packet.head.ret_code = None;
        assert!(matches!(
            parse_list_accounts(&packet),
            Err(MessageError::MissingHeadField { .. })
        ));
    }

    #[test]
    fn error_response_without_records_parses() {
        let packet = list_accounts_response("R1", RET_LOGIN_FAILED, "登录失败", &[]);
        let parsed = parse_list_accounts(&packet).unwrap();
        assert!(!parsed.is_ok());
        assert_eq!(parsed.ret_msg, "登录失败");
        assert!(parsed.records.is_empty());
    }

    #[test]
    fn foreign_block_in_response_is_refused() {
        let mut packet = list_accounts_response("R1", RET_OK, "", &[]);
        packet.body.push(Block::new(BLOCK_BALANCE));
        assert!(matches!(
            parse_list_accounts(&packet),
            Err(MessageError::UnexpectedBlock { index: 1, .. })
        ));
    }

    #[test]
    fn balance_request_round_trips_with_and_without_currency() {
        let items = vec![
            BalanceQueryItem {
                acc_no: "755900012310001".to_owned(),
                currency_code: None,
            },
            BalanceQueryItem {
                acc_no: "755900012310002".to_owned(),
                currency_code: Some("32".to_owned()),
            },
        ];
        let packet = balance_request("DEMO01", "R1", &items);
        assert_eq!(packet.head.login.as_deref(), Some("DEMO01"));
        assert_eq!(packet.head.data_type.as_deref(), Some(DATA_TYPE_XML));
        assert_eq!(parse_balance_request(&packet).unwrap(), items);
    }

    #[test]
    fn balance_request_sizes_outside_one_to_fifty_are_refused() {
        let item = BalanceQueryItem {
            acc_no: "1".to_owned(),
            currency_code: None,
        };
        let full = vec![item.clone(); MAX_ACCOUNTS_PER_BALANCE_QUERY];
        assert!(parse_balance_request(&balance_request("L", "R", &full)).is_ok());
        let over = vec![item; MAX_ACCOUNTS_PER_BALANCE_QUERY + 1];
        assert_eq!(
            parse_balance_request(&balance_request("L", "R", &over)),
            Err(MessageError::TooManyAccounts {
                count: MAX_ACCOUNTS_PER_BALANCE_QUERY + 1,
                max: MAX_ACCOUNTS_PER_BALANCE_QUERY,
            })
        );
        assert_eq!(
            parse_balance_request(&balance_request("L", "R", &[])),
            Err(MessageError::NoAccounts)
        );
    }

    #[test]
    fn wrong_function_error_clips_long_input() {
        let mut packet = list_accounts_request("L", "R");
        packet.head.func = "X".repeat(10_000);
        let message = parse_balance_request(&packet).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }
}
