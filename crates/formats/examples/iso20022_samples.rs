//! Renders ISO 20022 messages of every version we write into a directory,
//! for `scripts/xsd-check.sh` to validate against the official XSDs.
//!
//!     cargo run -p formats --example iso20022_samples -- <dir>
//!
//! One file per sample, named `<message version>-<shape>.xml`. For each
//! version there is a minimal message (only what the renderer requires) and
//! rich ones that fill every optional field the model has: several blocks,
//! Chinese, Japanese, Korean, accented and astral-plane text at the ISO
//! maximum lengths, markup characters, amounts in currencies of 0, 2, 3 and
//! 4 decimals, every balance type and entry status, rejections with reason
//! codes, pagination. The point is schema-invalid output, so the samples
//! reach every element the renderers can emit and the extreme values they
//! accept; a sample the renderer refuses is an error here (it would hide
//! what it was meant to test), except for the edge samples of input the
//! schema cannot carry, which the renderer may refuse (`Samples::edge`).

use std::error::Error;
use std::path::{Path, PathBuf};

use domain::{Bic, BusinessDate, Currency, Iban, Money};
use formats::iso20022::camt052::{self, BankToCustomerAccountReport};
use formats::iso20022::camt053::{
    self, Balance, BalanceType, BankToCustomerStatement, CreditDebit, Entry, EntryStatus,
    GroupHeader, Pagination, Statement, StatementHeader, TransactionDetails,
};
use formats::iso20022::camt054::{self, BankToCustomerDebitCreditNotification};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::pain002::{
    self, CustomerPaymentStatusReport, DecimalNumber, OriginalGroupStatus, OriginalPaymentStatus,
    Reason, Status, StatusReason, TransactionStatus,
};
use formats::iso20022::{
    AccountIdentification, Party, RenderError, MAX140, MAX34, MAX35, MAX70, MAX_ADDRESS_LINES,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// `Max105Text`, `pain.002` `StsRsnInf/AddtlInf`.
const MAX105: usize = pain002::MAX105;
/// The largest amount the renderers write: 18 digits of minor units.
const MAX_MINOR: i64 = 999_999_999_999_999_999;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: iso20022_samples <output directory>")?;
    std::fs::create_dir_all(&dir)?;
    let mut out = Samples { dir, written: 0 };
    pain001_samples(&mut out)?;
    pain002_samples(&mut out)?;
    camt053_samples(&mut out)?;
    camt052_samples(&mut out)?;
    camt054_samples(&mut out)?;
    eprintln!(
        "iso20022_samples: {} files in {}",
        out.written,
        out.dir.display()
    );
    Ok(())
}

struct Samples {
    dir: PathBuf,
    written: usize,
}

impl Samples {
    /// Writes `<name>.xml`; a refused render names the sample and the path.
    fn add(
        &mut self,
        name: &str,
        rendered: std::result::Result<Vec<u8>, RenderError>,
    ) -> Result<()> {
        let bytes =
            rendered.map_err(|e| format!("{name}: the renderer refused the sample: {e}"))?;
        let path: &Path = &self.dir.join(format!("{name}.xml"));
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        self.written += 1;
        Ok(())
    }

    /// For input the schema cannot carry: refusing it is the renderer's
    /// right answer (nothing is written); output, if any, is written for
    /// the XSD to judge.
    fn edge(
        &mut self,
        name: &str,
        rendered: std::result::Result<Vec<u8>, RenderError>,
    ) -> Result<()> {
        match rendered {
            Ok(bytes) => self.add(name, Ok(bytes)),
            Err(e) => {
                eprintln!(
                    "iso20022_samples: {name}: refused by the renderer, as it should be: {e}"
                );
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------

/// Exactly `chars` characters (Unicode scalar values, as the XSD counts
/// them), repeating `seed`.
fn fill(seed: &str, chars: usize) -> String {
    seed.chars().cycle().take(chars).collect()
}

/// Markup characters, CJK, accents and an astral-plane character.
const MIXED: &str = "A&B <Co> \"Ltd\" 'x' 上海浦东发展银行 みずほ 삼성 Zürich Ærø 𠀀💴 ";

fn iban(text: &str) -> Result<AccountIdentification> {
    Ok(AccountIdentification::Iban(Iban::parse(text)?))
}

fn bic(text: &str) -> Result<Bic> {
    Ok(Bic::parse(text)?)
}

fn money(minor: i64, code: &str) -> Result<Money> {
    Ok(Money::from_minor(minor, Currency::from_code(code)?))
}

fn day(y: i32, m: u32, d: u32) -> Result<BusinessDate> {
    Ok(BusinessDate::from_ymd(y, m, d)?)
}

fn named(name: &str) -> Party {
    Party {
        name: Some(name.to_owned()),
        address_lines: Vec::new(),
    }
}

/// Every field of a party at its maximum: a `Max140Text` name and
/// [`MAX_ADDRESS_LINES`] lines of `Max70Text`.
fn fullest_party(seed: &str) -> Party {
    Party {
        name: Some(fill(seed, MAX140)),
        address_lines: (0..MAX_ADDRESS_LINES).map(|_| fill(seed, MAX70)).collect(),
    }
}

fn chinese_party() -> Party {
    Party {
        name: Some("上海浦东新区张江高科技园区某某科技有限公司".to_owned()),
        address_lines: vec![
            "上海市浦东新区张江路 88 号".to_owned(),
            "邮编 201203，中国".to_owned(),
        ],
    }
}

// ---------------------------------------------------------------------------
// pain.001
// ---------------------------------------------------------------------------

fn pain001_samples(out: &mut Samples) -> Result<()> {
    for (version, tag) in [
        (pain001::Version::V09, "pain.001.001.09"),
        (pain001::Version::V03, "pain.001.001.03"),
    ] {
        out.add(
            &format!("{tag}-minimal"),
            pain001::render_version(&pain001_minimal()?, version),
        )?;
        out.add(
            &format!("{tag}-batch"),
            pain001::render_version(&pain001_batch()?, version),
        )?;
        out.add(
            &format!("{tag}-limits"),
            pain001::render_version(&pain001_limits()?, version),
        )?;
        out.add(
            &format!("{tag}-payroll"),
            pain001::render_version(&pain001_payroll()?, version),
        )?;
    }
    // `ExternalCategoryPurpose1Code` is 1 to 4 characters.
    let mut message = pain001_payroll()?;
    if let Some(payment) = message.payments.first_mut() {
        payment.category_purpose = Some("SALAR".to_owned());
    }
    out.edge(
        "pain.001.001.09-category-purpose-5-chars",
        pain001::render(&message),
    )?;
    // `BICFI` of .09 allows what the .03 `BICIdentifier` pattern does not:
    // a location code starting with 0 or 1, or ending with O.
    let mut message = pain001_minimal()?;
    if let Some(payment) = message.payments.first_mut() {
        payment.debtor_agent = bic("ABCDCH10")?;
        for tx in &mut payment.transactions {
            tx.creditor_agent = Some(bic("ABCDGB0O123")?);
        }
    }
    out.add(
        "pain.001.001.09-bicfi-only",
        pain001::render_version(&message, pain001::Version::V09),
    )?;
    // The farthest offsets an `ISODateTime` (`xs:dateTime`) allows are
    // -14:00 and +14:00; the renderers share one date-time check, so one
    // message stands for all of them.
    let mut message = pain001_minimal()?;
    message.created_at = "2026-11-28T10:15:00+14:30".to_owned();
    out.edge(
        "pain.001.001.09-offset-beyond-14h",
        pain001::render(&message),
    )?;
    Ok(())
}

/// Only what the renderer requires: one payment, one transfer, no names.
fn pain001_minimal() -> Result<CustomerCreditTransferInitiation> {
    Ok(CustomerCreditTransferInitiation {
        message_id: "M".to_owned(),
        created_at: "2026-11-28T10:15:00".to_owned(),
        initiating_party: Party::default(),
        payments: vec![PaymentInformation {
            id: "P".to_owned(),
            batch_booking: None,
            category_purpose: None,
            requested_execution_date: day(2026, 11, 30)?,
            debtor: Party::default(),
            debtor_account: iban("DE89370400440532013000")?,
            debtor_agent: bic("COBADEFF")?,
            transactions: vec![CreditTransfer {
                instruction_id: None,
                end_to_end_id: "E".to_owned(),
                amount: money(1, "EUR")?,
                creditor_agent: None,
                creditor: Party::default(),
                creditor_account: iban("FR1420041010050500013M02606")?,
                remittance: Vec::new(),
            }],
        }],
    })
}

/// A payroll chunk as the iso20022 connector uploads it: one `PmtInf` whose
/// `MsgId` and `PmtInfId` are the chunk reference, booked as one debit
/// (`BtchBookg` true) for salaries (`CtgyPurp/Cd` `SALA`), one transaction
/// per employee with its own `InstrId` and `EndToEndId`.
fn pain001_payroll() -> Result<CustomerCreditTransferInitiation> {
    let employee = |n: i64, name: &str, account: &str| -> Result<CreditTransfer> {
        Ok(CreditTransfer {
            instruction_id: Some(format!("PAY-202611-{n:04}")),
            end_to_end_id: format!("PAY-202611-{n:04}"),
            amount: money(250_000 + n * 1_234, "EUR")?,
            creditor_agent: None,
            creditor: named(name),
            creditor_account: iban(account)?,
            remittance: vec!["Gehalt November 2026".to_owned()],
        })
    };
    Ok(CustomerCreditTransferInitiation {
        message_id: "PAY-202611".to_owned(),
        created_at: "2026-11-28T10:15:00+01:00".to_owned(),
        initiating_party: named("h2h-partner-1"),
        payments: vec![PaymentInformation {
            id: "PAY-202611".to_owned(),
            batch_booking: Some(true),
            category_purpose: Some("SALA".to_owned()),
            requested_execution_date: day(2026, 11, 30)?,
            debtor: named("Beispiel GmbH"),
            debtor_account: iban("DE02120300000000202051")?,
            debtor_agent: bic("BYLADEM1001")?,
            transactions: vec![
                employee(1, "Erika Mustermann", "DE89370400440532013000")?,
                employee(2, "Jürgen Müller", "DE02500105170137075030")?,
                employee(3, "Zoë Ångström", "FR1420041010050500013M02606")?,
            ],
        }],
    })
}

/// A day's batch: three debtor accounts in CNY, JPY, BHD and EUR, every
/// optional field filled somewhere and left out somewhere else.
fn pain001_batch() -> Result<CustomerCreditTransferInitiation> {
    let salary = |n: i64, account: AccountIdentification| -> Result<CreditTransfer> {
        Ok(CreditTransfer {
            instruction_id: Some(format!("INSTR-20261128-{n:04}")),
            end_to_end_id: format!("SAL-202611-{n:06}"),
            amount: money(1_234_500 + n * 101, "CNY")?,
            creditor_agent: Some(bic("ICBKCNBJSHI")?),
            creditor: Party {
                name: Some(format!("员工{n} 王小明")),
                address_lines: vec!["北京市朝阳区建国路 1 号".to_owned()],
            },
            creditor_account: account,
            remittance: vec![format!("2026年11月工资 第{n}号"), "含绩效奖金".to_owned()],
        })
    };
    Ok(CustomerCreditTransferInitiation {
        message_id: "BATCH-20261128-0001".to_owned(),
        created_at: "2026-11-28T10:15:00.123+08:00".to_owned(),
        initiating_party: chinese_party(),
        payments: vec![
            PaymentInformation {
                id: "PMTINF-CNY-SALARY".to_owned(),
                batch_booking: Some(true),
                category_purpose: Some("SALA".to_owned()),
                requested_execution_date: day(2026, 11, 30)?,
                debtor: chinese_party(),
                debtor_account: AccountIdentification::Other("6222021234567890123".to_owned()),
                debtor_agent: bic("BKCHCNBJ")?,
                transactions: vec![
                    salary(
                        1,
                        AccountIdentification::Other("6217001234567890".to_owned()),
                    )?,
                    salary(
                        2,
                        AccountIdentification::Other("6228480012345678913".to_owned()),
                    )?,
                    salary(3, iban("GB29NWBK60161331926819")?)?,
                ],
            },
            PaymentInformation {
                id: "PMTINF-JPY-SUPPLIERS".to_owned(),
                batch_booking: Some(false),
                category_purpose: Some("SUPP".to_owned()),
                requested_execution_date: day(2026, 12, 1)?,
                debtor: Party {
                    name: Some("株式会社サンプル商事".to_owned()),
                    address_lines: vec!["東京都千代田区丸の内1-1-1".to_owned()],
                },
                debtor_account: AccountIdentification::Other("0011234567".to_owned()),
                debtor_agent: bic("MHCBJPJT")?,
                transactions: vec![
                    CreditTransfer {
                        instruction_id: Some("JP-1".to_owned()),
                        end_to_end_id: "INV-2026-0042".to_owned(),
                        amount: money(1_500_000, "JPY")?,
                        creditor_agent: Some(bic("SMBCJPJTXXX")?),
                        creditor: named("삼성전자 주식회사"),
                        creditor_account: AccountIdentification::Other(
                            "1002-345-678901".to_owned(),
                        ),
                        remittance: vec!["請求書 INV-2026-0042".to_owned()],
                    },
                    CreditTransfer {
                        instruction_id: None,
                        end_to_end_id: "NOTPROVIDED".to_owned(),
                        amount: money(1, "JPY")?,
                        creditor_agent: None,
                        creditor: Party::default(),
                        creditor_account: iban("MT84MALT011000012345MTLCAST001S")?,
                        remittance: Vec::new(),
                    },
                ],
            },
            PaymentInformation {
                id: "PMTINF-MIXED-3DP".to_owned(),
                batch_booking: None,
                category_purpose: None,
                requested_execution_date: day(2026, 12, 31)?,
                debtor: named(MIXED.trim()),
                debtor_account: iban("LC55HEMM000100010012001200023015")?,
                debtor_agent: bic("DEUTDEFF500")?,
                transactions: vec![
                    CreditTransfer {
                        instruction_id: Some("BH-1".to_owned()),
                        end_to_end_id: "E2E <&> \"'".to_owned(),
                        amount: money(12_345, "BHD")?,
                        creditor_agent: Some(bic("NBOBBHBM")?),
                        creditor: Party {
                            name: Some("Société Générale & Cie <Bahrain>".to_owned()),
                            address_lines: vec![
                                "Rue de l'Église 1".to_owned(),
                                "Manama".to_owned(),
                                "Bahrain".to_owned(),
                            ],
                        },
                        creditor_account: iban("FR1420041010050500013M02606")?,
                        remittance: vec!["Facture n° 12 / 2026".to_owned(), fill(MIXED, MAX140)],
                    },
                    CreditTransfer {
                        instruction_id: Some("EU-1".to_owned()),
                        end_to_end_id: "EUR-CENTS".to_owned(),
                        amount: money(100, "EUR")?,
                        creditor_agent: Some(bic("COBADEFFXXX")?),
                        creditor: named("Jürgen Müller"),
                        creditor_account: iban("DE89370400440532013000")?,
                        remittance: vec!["Rechnung 4711".to_owned()],
                    },
                    CreditTransfer {
                        instruction_id: None,
                        end_to_end_id: "CLF-4DP".to_owned(),
                        amount: money(12_345, "CLF")?,
                        creditor_agent: Some(bic("BCHICLRM")?),
                        creditor: named("Inversiones Ñuñoa SpA"),
                        creditor_account: AccountIdentification::Other("000123456789".to_owned()),
                        remittance: Vec::new(),
                    },
                ],
            },
        ],
    })
}

/// Every text at its ISO maximum, in CJK and astral-plane characters, and
/// amounts up to the 18-digit limit of the control sum (all in JPY, so the
/// sum's scale stays 0).
fn pain001_limits() -> Result<CustomerCreditTransferInitiation> {
    let transfer = |seed: &str, minor: i64| -> Result<CreditTransfer> {
        Ok(CreditTransfer {
            instruction_id: Some(fill(seed, MAX35)),
            end_to_end_id: fill(seed, MAX35),
            amount: money(minor, "JPY")?,
            creditor_agent: Some(bic("ICBKCNBJSHI")?),
            creditor: fullest_party(seed),
            creditor_account: AccountIdentification::Other(fill(seed, MAX34)),
            remittance: (0..3).map(|_| fill(seed, MAX140)).collect(),
        })
    };
    Ok(CustomerCreditTransferInitiation {
        message_id: fill("中", MAX35),
        created_at: "2026-11-28T23:59:59.999999-05:30".to_owned(),
        initiating_party: fullest_party("株式会社"),
        payments: vec![
            PaymentInformation {
                id: fill("𠀀💴", MAX35),
                batch_booking: Some(true),
                // The longest code, markup characters included.
                category_purpose: Some("<&>\"".to_owned()),
                requested_execution_date: day(2026, 2, 28)?,
                debtor: fullest_party(MIXED),
                debtor_account: AccountIdentification::Other(fill("账", MAX34)),
                debtor_agent: bic("BKCHCNBJ")?,
                transactions: vec![transfer("上海", MAX_MINOR - 2)?, transfer("<&>", 1)?],
            },
            PaymentInformation {
                id: fill("x", MAX35),
                batch_booking: Some(false),
                // The shortest code.
                category_purpose: Some("X".to_owned()),
                requested_execution_date: day(9999, 12, 31)?,
                debtor: fullest_party("é"),
                debtor_account: iban("LC55HEMM000100010012001200023015")?,
                debtor_agent: bic("DEUTDEFF500")?,
                transactions: vec![transfer("Ü", 1)?],
            },
        ],
    })
}

// ---------------------------------------------------------------------------
// pain.002
// ---------------------------------------------------------------------------

fn pain002_samples(out: &mut Samples) -> Result<()> {
    for (version, tag) in [
        (pain002::Version::V03, "pain.002.001.03"),
        (pain002::Version::V12, "pain.002.001.12"),
    ] {
        out.add(
            &format!("{tag}-minimal"),
            pain002::render(&pain002_minimal(), version),
        )?;
        out.add(
            &format!("{tag}-group-rejected"),
            pain002::render(&pain002_group_rejected()?, version),
        )?;
        out.add(
            &format!("{tag}-partial"),
            pain002::render(&pain002_partial(version)?, version),
        )?;
    }
    Ok(())
}

fn pain002_minimal() -> CustomerPaymentStatusReport {
    CustomerPaymentStatusReport {
        message_id: "S".to_owned(),
        created_at: "2026-11-28T10:15:00Z".to_owned(),
        original_group: OriginalGroupStatus {
            original_message_id: "M".to_owned(),
            original_message_name_id: "pain.001.001.09".to_owned(),
            original_count: None,
            original_control_sum: None,
            status: None,
            reasons: Vec::new(),
        },
        original_payments: Vec::new(),
    }
}

/// A whole file refused, with reasons at the group level only.
fn pain002_group_rejected() -> Result<CustomerPaymentStatusReport> {
    Ok(CustomerPaymentStatusReport {
        message_id: "STS-20261128-REJ".to_owned(),
        created_at: "2026-11-28T10:16:02+08:00".to_owned(),
        original_group: OriginalGroupStatus {
            original_message_id: "BATCH-20261128-0001".to_owned(),
            original_message_name_id: "pain.001.001.03".to_owned(),
            original_count: Some(999_999_999_999_999),
            original_control_sum: Some(
                DecimalNumber::from_parts(999_999_999_999_999_999, 17)
                    .ok_or("control sum out of range")?,
            ),
            status: Some(Status::Rejected),
            reasons: vec![
                StatusReason {
                    reason: Some(Reason::Code("FF01".to_owned())),
                    additional_info: vec![
                        "文件格式错误：第 12 行".to_owned(),
                        fill("报文校验失败，请检查后重新提交。", MAX105),
                    ],
                },
                StatusReason {
                    reason: Some(Reason::Proprietary(fill("银行自定义原因", MAX35))),
                    additional_info: Vec::new(),
                },
                // Neither reason nor text: every child of StsRsnInf is optional.
                StatusReason::default(),
            ],
        },
        original_payments: Vec::new(),
    })
}

/// Some payments accepted, some rejected, with transaction statuses and
/// reason codes; `.12` adds codes from the external lists that `.03` lacks.
fn pain002_partial(version: pain002::Version) -> Result<CustomerPaymentStatusReport> {
    let tx = |instr: Option<&str>, e2e: Option<&str>, status: Option<Status>| TransactionStatus {
        original_instruction_id: instr.map(str::to_owned),
        original_end_to_end_id: e2e.map(str::to_owned),
        status,
        reasons: Vec::new(),
        accepted_at: None,
    };
    let reason = |code: &str, info: &[&str]| StatusReason {
        reason: Some(Reason::Code(code.to_owned())),
        additional_info: info.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut accepted = tx(
        Some("INSTR-20261128-0001"),
        Some("SAL-202611-000001"),
        Some(Status::AcceptedSettlementCompleted),
    );
    accepted.accepted_at = Some("2026-11-28T10:20:00.5+08:00".to_owned());
    let mut rejected = tx(
        Some("INSTR-20261128-0002"),
        Some("SAL-202611-000002"),
        Some(Status::Rejected),
    );
    rejected.reasons = vec![
        reason("AC01", &["收款账号不存在", "Incorrect account number"]),
        reason("AM04", &[]),
    ];
    let mut closed = tx(None, Some("SAL-202611-000003"), Some(Status::Rejected));
    closed.reasons = vec![StatusReason {
        reason: Some(Reason::Proprietary("CLOSED-ACCT".to_owned())),
        additional_info: vec![fill("账户已销户", MAX105)],
    }];
    let mut payments = vec![
        OriginalPaymentStatus {
            original_payment_information_id: "PMTINF-CNY-SALARY".to_owned(),
            status: Some(Status::PartiallyAccepted),
            reasons: vec![reason("NARR", &["2 笔成功，1 笔失败"])],
            transactions: vec![accepted, rejected, closed],
        },
        OriginalPaymentStatus {
            original_payment_information_id: "PMTINF-JPY-SUPPLIERS".to_owned(),
            status: Some(Status::AcceptedCustomerProfile),
            reasons: Vec::new(),
            transactions: vec![
                tx(
                    Some("JP-1"),
                    None,
                    Some(Status::AcceptedTechnicalValidation),
                ),
                tx(None, None, Some(Status::AcceptedSettlementInProcess)),
                tx(None, Some("NOTPROVIDED"), Some(Status::AcceptedWithChange)),
                tx(None, Some("X"), Some(Status::Pending)),
                tx(None, Some("Y"), None),
            ],
        },
        OriginalPaymentStatus {
            original_payment_information_id: "PMTINF-MIXED-3DP".to_owned(),
            status: Some(Status::Received),
            reasons: Vec::new(),
            transactions: Vec::new(),
        },
        OriginalPaymentStatus {
            original_payment_information_id: fill("<&>\"'", MAX35),
            status: None,
            reasons: Vec::new(),
            transactions: Vec::new(),
        },
    ];
    if version == pain002::Version::V12 {
        // External codes that only the .12 lists carry.
        payments.push(OriginalPaymentStatus {
            original_payment_information_id: "PMTINF-EXTERNAL-CODES".to_owned(),
            status: Some(Status::Other("ACFC".to_owned())),
            reasons: Vec::new(),
            transactions: vec![
                tx(Some("RCVD-TX"), None, Some(Status::Received)),
                tx(
                    Some("BLCK-TX"),
                    None,
                    Some(Status::Other("BLCK".to_owned())),
                ),
                tx(
                    Some("ACFC-TX"),
                    None,
                    Some(Status::Other("ACFC".to_owned())),
                ),
            ],
        });
    }
    Ok(CustomerPaymentStatusReport {
        message_id: "STS-20261128-0002".to_owned(),
        created_at: "2026-11-28T10:30:00+08:00".to_owned(),
        original_group: OriginalGroupStatus {
            original_message_id: "BATCH-20261128-0001".to_owned(),
            original_message_name_id: "pain.001.001.09".to_owned(),
            original_count: Some(7),
            original_control_sum: Some(
                DecimalNumber::from_parts(3_705_504_123, 3).ok_or("control sum out of range")?,
            ),
            status: Some(Status::PartiallyAccepted),
            reasons: Vec::new(),
        },
        original_payments: payments,
    })
}

// ---------------------------------------------------------------------------
// camt.053, camt.052, camt.054
// ---------------------------------------------------------------------------

fn balance(kind: BalanceType, minor: i64, code: &str, indicator: CreditDebit) -> Result<Balance> {
    Ok(Balance {
        kind,
        amount: money(minor, code)?,
        indicator,
        date: day(2026, 11, 27)?,
    })
}

/// An entry with every field, two transactions with every field.
fn full_entry(n: u32, status: EntryStatus, amount: Money) -> Result<Entry> {
    Ok(Entry {
        reference: Some(format!("NTRY-{n:04}")),
        amount,
        indicator: if n % 2 == 0 {
            CreditDebit::Credit
        } else {
            CreditDebit::Debit
        },
        status,
        booking_date: Some(day(2026, 11, 27)?),
        value_date: Some(day(2026, 11, 28)?),
        account_servicer_reference: Some(format!("ASR{n:012}")),
        bank_transaction_code: Some("PMNT/RCDT/ESCT 工资".to_owned()),
        transactions: vec![
            TransactionDetails {
                end_to_end_id: Some(format!("SAL-202611-{n:06}")),
                debtor: chinese_party(),
                creditor: Party {
                    name: Some("王小明".to_owned()),
                    address_lines: vec!["北京市朝阳区".to_owned()],
                },
                remittance: vec!["2026年11月工资".to_owned(), "含绩效奖金".to_owned()],
            },
            TransactionDetails {
                end_to_end_id: Some("E2E <&> \"'".to_owned()),
                debtor: named("Jürgen Müller"),
                creditor: Party::default(),
                remittance: Vec::new(),
            },
        ],
    })
}

/// An entry with only what the renderer requires.
fn bare_entry(status: EntryStatus, amount: Money) -> Entry {
    Entry {
        reference: None,
        amount,
        indicator: CreditDebit::Credit,
        status,
        booking_date: None,
        value_date: None,
        account_servicer_reference: None,
        bank_transaction_code: None,
        transactions: Vec::new(),
    }
}

/// Entries of every shape: full, bare, zero amounts, only a creditor, only
/// an address, only remittance, at the length limits. `statuses` are those
/// the version carries.
fn entries(statuses: &[EntryStatus], code: &str) -> Result<Vec<Entry>> {
    let mut list = Vec::new();
    for (n, status) in (1u32..).zip(statuses.iter().copied()) {
        list.push(full_entry(n, status, money(12_345 * i64::from(n), code)?)?);
        list.push(bare_entry(status, money(0, code)?));
    }
    let mut only_creditor = bare_entry(EntryStatus::Booked, money(MAX_MINOR, code)?);
    only_creditor.transactions = vec![TransactionDetails {
        end_to_end_id: None,
        debtor: Party::default(),
        creditor: Party {
            name: None,
            address_lines: vec!["No name, only an address".to_owned()],
        },
        remittance: Vec::new(),
    }];
    list.push(only_creditor);
    let mut only_remittance = bare_entry(EntryStatus::Booked, money(1, code)?);
    only_remittance.transactions = vec![
        TransactionDetails {
            remittance: vec![fill(MIXED, MAX140)],
            ..TransactionDetails::default()
        },
        // A TxDtls with nothing we model in it.
        TransactionDetails::default(),
    ];
    list.push(only_remittance);
    let seed = "招商银行深圳分行𠀀";
    let mut longest = full_entry(99, EntryStatus::Booked, money(1, code)?)?;
    longest.reference = Some(fill(seed, MAX35));
    longest.account_servicer_reference = Some(fill(seed, MAX35));
    longest.bank_transaction_code = Some(fill(seed, MAX35));
    longest.transactions = vec![TransactionDetails {
        end_to_end_id: Some(fill(seed, MAX35)),
        debtor: fullest_party(seed),
        creditor: fullest_party(MIXED),
        remittance: (0..5).map(|_| fill(seed, MAX140)).collect(),
    }];
    list.push(longest);
    Ok(list)
}

/// One statement (report, notification) header with every field.
fn full_header(
    id: &str,
    account: AccountIdentification,
    code: &str,
    balances: Vec<Balance>,
) -> Result<StatementHeader> {
    Ok(StatementHeader {
        id: id.to_owned(),
        electronic_sequence_number: Some(20_261_127),
        created_at: Some("2026-11-28T06:00:00+08:00".to_owned()),
        account,
        currency: Some(Currency::from_code(code)?),
        balances,
    })
}

/// Every balance type, on both sides, in the account's currency.
fn all_balances(code: &str) -> Result<Vec<Balance>> {
    BalanceType::all()
        .zip(0i64..)
        .map(|(kind, n)| {
            let indicator = if n % 3 == 0 {
                CreditDebit::Debit
            } else {
                CreditDebit::Credit
            };
            balance(kind, n * 1_000_003, code, indicator)
        })
        .collect()
}

/// Three statements in CNY (Other account id), JPY and BHD (IBANs), then a
/// short one in CLF (4 decimals) and one with no entries.
fn statements(statuses: &[EntryStatus]) -> Result<Vec<Statement>> {
    let mut list = Vec::new();
    for (index, (code, account)) in [
        (
            "CNY",
            AccountIdentification::Other("755912345610801".to_owned()),
        ),
        ("JPY", iban("GB29NWBK60161331926819")?),
        ("BHD", iban("LC55HEMM000100010012001200023015")?),
    ]
    .into_iter()
    .enumerate()
    {
        list.push(Statement {
            header: full_header(
                &format!("STMT-20261127-{index}"),
                account,
                code,
                all_balances(code)?,
            )?,
            entries: entries(statuses, code)?,
        });
    }
    list.push(Statement {
        header: StatementHeader {
            id: fill("对账单", MAX35),
            electronic_sequence_number: Some(camt053::MAX_SEQUENCE_NUMBER),
            created_at: Some("2026-11-28T00:00:00Z".to_owned()),
            account: AccountIdentification::Other(fill("账户", MAX34)),
            currency: None,
            balances: vec![
                balance(
                    BalanceType::OpeningBooked,
                    10_000,
                    "CLF",
                    CreditDebit::Credit,
                )?,
                balance(BalanceType::ClosingBooked, 0, "CLF", CreditDebit::Debit)?,
            ],
        },
        entries: vec![full_entry(7, EntryStatus::Booked, money(10_000, "CLF")?)?],
    });
    list.push(Statement {
        header: full_header(
            "STMT-NO-MOVEMENT",
            iban("DE89370400440532013000")?,
            "EUR",
            vec![
                balance(
                    BalanceType::OpeningBooked,
                    5_000,
                    "EUR",
                    CreditDebit::Credit,
                )?,
                balance(
                    BalanceType::ClosingBooked,
                    5_000,
                    "EUR",
                    CreditDebit::Credit,
                )?,
            ],
        )?,
        entries: Vec::new(),
    });
    Ok(list)
}

/// The smallest valid statement: one opening balance, no entries (a
/// camt.053 statement needs at least one `Bal`, and `.02` a `CreDtTm`).
fn minimal_statement() -> Result<Statement> {
    Ok(Statement {
        header: StatementHeader {
            id: "S".to_owned(),
            electronic_sequence_number: None,
            created_at: Some("2026-11-28T06:00:00".to_owned()),
            account: AccountIdentification::Other("1".to_owned()),
            currency: None,
            balances: vec![balance(
                BalanceType::OpeningBooked,
                0,
                "CNY",
                CreditDebit::Credit,
            )?],
        },
        entries: Vec::new(),
    })
}

fn page(page_number: u32, last_page: bool) -> Option<Pagination> {
    Some(Pagination {
        page_number,
        last_page,
    })
}

const ALL_STATUSES: [EntryStatus; 4] = [
    EntryStatus::Booked,
    EntryStatus::Pending,
    EntryStatus::Information,
    EntryStatus::Future,
];
/// `EntryStatus2Code` of camt.053.001.02: no `FUTR`.
const V02_STATUSES: [EntryStatus; 3] = [
    EntryStatus::Booked,
    EntryStatus::Pending,
    EntryStatus::Information,
];

fn camt053_samples(out: &mut Samples) -> Result<()> {
    for (version, tag, statuses) in [
        (camt053::Version::V08, "camt.053.001.08", &ALL_STATUSES[..]),
        (camt053::Version::V02, "camt.053.001.02", &V02_STATUSES[..]),
    ] {
        let minimal = BankToCustomerStatement {
            group_header: GroupHeader::new("M", "2026-11-28T06:00:00"),
            statements: vec![minimal_statement()?],
        };
        out.add(
            &format!("{tag}-minimal"),
            camt053::render_version(&minimal, version),
        )?;
        let rich = BankToCustomerStatement {
            group_header: GroupHeader {
                message_id: "STMT-MSG-20261127".to_owned(),
                created_at: "2026-11-28T06:00:00.000+08:00".to_owned(),
                pagination: page(1, true),
            },
            statements: statements(statuses)?,
        };
        out.add(
            &format!("{tag}-statements"),
            camt053::render_version(&rich, version),
        )?;
        // A statement split over pages: the first and the last, at the
        // largest page number.
        for (name, pagination) in [
            ("page-1", page(1, false)),
            ("page-last", page(99_999, true)),
        ] {
            let paged = BankToCustomerStatement {
                group_header: GroupHeader {
                    message_id: fill("页", MAX35),
                    created_at: "2026-11-28T06:00:00+14:00".to_owned(),
                    pagination,
                },
                statements: vec![minimal_statement()?],
            };
            out.add(
                &format!("{tag}-{name}"),
                camt053::render_version(&paged, version),
            )?;
        }
    }
    // `.08` only: a statement without its creation date-time.
    let mut undated = minimal_statement()?;
    undated.header.created_at = None;
    out.add(
        "camt.053.001.08-no-creation-time",
        camt053::render(&BankToCustomerStatement {
            group_header: GroupHeader::new("M", "2026-11-28T06:00:00Z"),
            statements: vec![undated.clone()],
        }),
    )?;
    // What the schemas cannot carry: the renderer may refuse it, or the
    // XSD finds it.
    let one = |statement: Statement, pagination: Option<Pagination>| BankToCustomerStatement {
        group_header: GroupHeader {
            message_id: "M".to_owned(),
            created_at: "2026-11-28T06:00:00Z".to_owned(),
            pagination,
        },
        statements: vec![statement],
    };
    let mut no_balances = minimal_statement()?;
    no_balances.header.balances.clear();
    let mut long_number = minimal_statement()?;
    long_number.header.electronic_sequence_number = Some(camt053::MAX_SEQUENCE_NUMBER + 1);
    let mut future = minimal_statement()?;
    future.entries = vec![bare_entry(EntryStatus::Future, money(1, "CNY")?)];
    for (version, tag) in [
        (camt053::Version::V08, "camt.053.001.08"),
        (camt053::Version::V02, "camt.053.001.02"),
    ] {
        for (name, message) in [
            ("no-balances", one(no_balances.clone(), None)),
            ("sequence-number-19-digits", one(long_number.clone(), None)),
            (
                "page-100000",
                one(minimal_statement()?, page(100_000, true)),
            ),
        ] {
            out.edge(
                &format!("{tag}-{name}"),
                camt053::render_version(&message, version),
            )?;
        }
    }
    out.edge(
        "camt.053.001.02-no-creation-time",
        camt053::render_version(&one(undated, None), camt053::Version::V02),
    )?;
    out.edge(
        "camt.053.001.02-future-entry",
        camt053::render_version(&one(future, None), camt053::Version::V02),
    )?;
    Ok(())
}

fn camt052_samples(out: &mut Samples) -> Result<()> {
    // Intraday: interim balances only, or none at all; pending entries.
    let mut bare = minimal_statement()?;
    bare.header.balances.clear();
    bare.header.created_at = None;
    out.add(
        "camt.052.001.08-minimal",
        camt052::render(&BankToCustomerAccountReport {
            group_header: GroupHeader::new("M", "2026-11-28T12:00:00"),
            reports: vec![bare],
        }),
    )?;
    let mut reports = statements(&ALL_STATUSES)?;
    if let Some(first) = reports.first_mut() {
        first.header.balances = vec![
            balance(
                BalanceType::InterimBooked,
                5_000_000,
                "CNY",
                CreditDebit::Credit,
            )?,
            balance(
                BalanceType::InterimAvailable,
                4_900_000,
                "CNY",
                CreditDebit::Credit,
            )?,
        ];
        first.entries = vec![
            full_entry(2, EntryStatus::Pending, money(100_000, "CNY")?)?,
            bare_entry(EntryStatus::Pending, money(1, "CNY")?),
        ];
    }
    if let Some(second) = reports.get_mut(1) {
        second.header.balances.clear();
    }
    out.add(
        "camt.052.001.08-intraday",
        camt052::render(&BankToCustomerAccountReport {
            group_header: GroupHeader {
                message_id: "RPT-20261128-1200".to_owned(),
                created_at: "2026-11-28T12:00:00+08:00".to_owned(),
                pagination: page(2, false),
            },
            reports,
        }),
    )?;
    Ok(())
}

fn camt054_samples(out: &mut Samples) -> Result<()> {
    let mut bare = minimal_statement()?;
    bare.header.balances.clear();
    bare.header.created_at = None;
    out.add(
        "camt.054.001.08-minimal",
        camt054::render(&BankToCustomerDebitCreditNotification {
            group_header: GroupHeader::new("M", "2026-11-28T12:00:00"),
            notifications: vec![bare],
        }),
    )?;
    // A notification carries no balances.
    let mut notifications = statements(&ALL_STATUSES)?;
    for notification in &mut notifications {
        notification.header.balances.clear();
    }
    out.add(
        "camt.054.001.08-notifications",
        camt054::render(&BankToCustomerDebitCreditNotification {
            group_header: GroupHeader {
                message_id: "NTF-20261128-0001".to_owned(),
                created_at: "2026-11-28T09:41:00-05:00".to_owned(),
                pagination: page(1, true),
            },
            notifications,
        }),
    )?;
    Ok(())
}
