//! camt_bench: how fast formats' camt.053 reader turns a statement file into
//! domain entries, beside a raw quick-xml scan of the same file
//! (`benches/camt.sh`, BENCHMARKS.md "camt.053 streaming").
//!
//! - `generate` writes a deterministic camt.053.001.08 of about `--size-mb`
//!   MB (MB = 2^20 bytes here and in every output) straight to disk: the
//!   statement headers and chunks of entries are rendered by
//!   `formats::iso20022::camt053::render` and cut out of its output, so the
//!   file has exactly the element layout our own renderer writes.
//! - `parse` streams it through `camt053::StatementReader` over a
//!   `BufReader<File>` and converts every entry to domain types the way a
//!   connector does (a mirror of `banks::BankEntry`).
//! - `scan` is the baseline: quick-xml (the version formats uses) reading
//!   every event of the same file with one reused buffer, unescaping
//!   nothing, with the reader configured as formats configures it.
//!
//! Each prints one JSON line: bytes, seconds, MB/s, what it counted (a
//! checksum, so nothing is optimised away and the three measurements of
//! `camt.sh` can be checked against each other) and the peak resident set
//! (`VmHWM` from `/proc/self/status`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::Datelike;
use clap::{Parser, Subcommand};
use domain::{BusinessDate, Currency, Direction, EntryStatus, Iban, Money};
use formats::iso20022::camt053::{
    self, BalanceType, BankToCustomerStatement, CreditDebit, Entry, GroupHeader, Statement,
    StatementHeader, StatementItem, StatementReader, TransactionDetails,
};
use formats::iso20022::{AccountIdentification, Limits, Party};
use quick_xml::events::Event;

/// MB in every figure this tool prints.
const MB: f64 = 1024.0 * 1024.0;
/// The `BufReader` capacity for `parse` and `scan` (the same for both).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Entries rendered per `render` call while generating.
const RENDER_CHUNK_ENTRIES: usize = 1_000;
/// Bounds on the generator's inputs (limits on everything).
const MAX_SIZE_MB: u64 = 64 * 1024;
const MAX_ENTRIES_PER_STATEMENT: usize = 10_000_000;
/// Progress on stderr every this many bytes written.
const PROGRESS_EVERY_BYTES: u64 = 128 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "camt_bench",
    about = "camt.053 streaming throughput: generate a large statement, parse it to domain entries, or scan it raw with quick-xml.",
    after_help = "Examples:\n  \
camt_bench generate --out /tmp/camt/stmt.xml --size-mb 1024 --seed 1\n  \
camt_bench parse --in /tmp/camt/stmt.xml\n  \
camt_bench scan --in /tmp/camt/stmt.xml\n\
benches/camt.sh runs all three (and Python lxml) and prints the table for BENCHMARKS.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic camt.053.001.08 of about --size-mb MB (streamed, never held in memory).
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Target size in MB (2^20 bytes); the file lands near it (statements are sized by the entry size so far).
        #[arg(long)]
        size_mb: u64,
        /// The same seed writes the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Entries per `Stmt` (statements rotate over four accounts, one business day each).
        #[arg(long, default_value_t = 20_000)]
        entries_per_statement: usize,
    },
    /// Stream the file through formats' StatementReader into domain entries.
    Parse {
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Read every XML event of the file with quick-xml, the raw baseline.
    Scan {
        #[arg(long = "in")]
        input: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate {
            out,
            size_mb,
            seed,
            entries_per_statement,
        } => generate(&out, size_mb, seed, entries_per_statement),
        Command::Parse { input } => parse(&input),
        Command::Scan { input } => scan(&input),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camt_bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// parse: formats' reader into domain entries
// ---------------------------------------------------------------------------

/// What a connector makes of one camt.053 entry: `banks::BankEntry` without
/// the fields camt.053's model does not carry (counterparty account and
/// bank, running balance). Not depending on `banks` keeps this binary's
/// build to `formats` and `domain`.
#[derive(Debug)]
struct BankEntry {
    direction: Direction,
    /// Always positive.
    amount: Money,
    booking_date: BusinessDate,
    value_date: BusinessDate,
    status: EntryStatus,
    counterparty_name: Option<String>,
    remittance: Option<String>,
    /// `AcctSvcrRef`.
    bank_transaction_id: Option<String>,
    end_to_end_id: Option<String>,
}

/// camt.053 entry to domain entry, as the ISO 20022 connector maps it:
/// direction from `CdtDbtInd`, the counterparty is the debtor of a credit
/// and the creditor of a debit, remittance lines joined by a space, the
/// value date defaults to the booking date. `INFO`/`FUTR` entries are not
/// account movements (`None`).
fn to_bank_entry(entry: Entry) -> Result<Option<BankEntry>, String> {
    let status = match entry.status {
        camt053::EntryStatus::Booked => EntryStatus::Booked,
        camt053::EntryStatus::Pending => EntryStatus::Pending,
        camt053::EntryStatus::Information | camt053::EntryStatus::Future => return Ok(None),
    };
    if !entry.amount.is_positive() {
        return Err(format!("entry amount {} is not positive", entry.amount));
    }
    let direction = match entry.indicator {
        CreditDebit::Credit => Direction::Credit,
        CreditDebit::Debit => Direction::Debit,
    };
    let booking_date = entry
        .booking_date
        .ok_or_else(|| "an entry has no booking date".to_owned())?;
    let tx = entry.transactions.into_iter().next().unwrap_or_default();
    let counterparty = match direction {
        Direction::Credit => tx.debtor,
        Direction::Debit => tx.creditor,
    };
    let remittance = (!tx.remittance.is_empty()).then(|| tx.remittance.join(" "));
    Ok(Some(BankEntry {
        direction,
        amount: entry.amount,
        booking_date,
        value_date: entry.value_date.unwrap_or(booking_date),
        status,
        counterparty_name: counterparty.name,
        remittance,
        bank_transaction_id: entry.account_servicer_reference,
        end_to_end_id: tx.end_to_end_id,
    }))
}

/// Limits for a statement file of any size: the streaming reader has no
/// total size limit (`max_bytes` applies only to whole-buffer parsing, so
/// it keeps its default); the rest bound one entry, not the file.
fn streaming_limits() -> Limits {
    Limits {
        max_depth: 32,
        max_text_bytes: 16 * 1024,
        max_event_bytes: 128 * 1024,
        // One entry with all its descendants; a batch booking with a few
        // thousand TxDtls of ~25 elements each fits.
        max_elements: 100_000,
        ..Limits::default()
    }
}

/// Counted over every converted entry; compared across parse, lxml and
/// generate by `camt.sh`.
#[derive(Debug, Default)]
struct Checksum {
    entries: u64,
    statements: u64,
    /// Credits plus, debits minus, in minor units.
    signed_sum_minor: i128,
    /// Booking plus value date, as days from 0001-01-01 = 1 (Python's
    /// `date.toordinal()`).
    date_sum: i64,
    /// Entries with status `PDNG` (the rest are `BOOK`).
    pending: u64,
    /// UTF-8 bytes of the strings kept (Rust only; Python counts characters).
    text_bytes: u64,
}

impl Checksum {
    fn add(&mut self, entry: &BankEntry) {
        self.entries += 1;
        let minor = i128::from(entry.amount.minor());
        match entry.direction {
            Direction::Credit => self.signed_sum_minor += minor,
            Direction::Debit => self.signed_sum_minor -= minor,
        }
        self.date_sum += i64::from(entry.booking_date.naive().num_days_from_ce())
            + i64::from(entry.value_date.naive().num_days_from_ce());
        let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
        self.text_bytes += len(&entry.counterparty_name)
            + len(&entry.remittance)
            + len(&entry.bank_transaction_id)
            + len(&entry.end_to_end_id);
        if entry.status == EntryStatus::Pending {
            self.pending += 1;
        }
    }
}

fn parse(path: &Path) -> Result<String, String> {
    let started = Instant::now();
    let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let bytes = file
        .metadata()
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .len();
    let reader = StatementReader::new(
        BufReader::with_capacity(READ_BUFFER_BYTES, file),
        streaming_limits(),
    );
    let mut sum = Checksum::default();
    for item in reader {
        match item.map_err(|e| format!("{}: {e}", path.display()))? {
            StatementItem::Group(_) => {}
            StatementItem::Statement(_) => sum.statements += 1,
            StatementItem::Entry(entry) => {
                if let Some(entry) = to_bank_entry(entry)? {
                    sum.add(&entry);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"mode\":\"parse\",\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mb_per_s\":{:.1},\
\"entries\":{},\"pending\":{},\"statements\":{},\"signed_sum_minor\":{},\"date_sum\":{},\
\"text_bytes\":{},\"peak_rss_kib\":{}}}",
        bytes as f64 / MB / seconds,
        sum.entries,
        sum.pending,
        sum.statements,
        sum.signed_sum_minor,
        sum.date_sum,
        sum.text_bytes,
        peak_rss_kib()?,
    ))
}

// ---------------------------------------------------------------------------
// scan: the raw quick-xml baseline
// ---------------------------------------------------------------------------

fn scan(path: &Path) -> Result<String, String> {
    let started = Instant::now();
    let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let bytes = file
        .metadata()
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .len();
    let mut reader =
        quick_xml::Reader::from_reader(BufReader::with_capacity(READ_BUFFER_BYTES, file));
    // As formats' XmlReader sets them, so both do the same well-formedness
    // work (end names checked against start names).
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    config.check_comments = false;
    config.trim_text_start = false;
    config.trim_text_end = false;
    let mut buf = Vec::with_capacity(1024);
    let (mut start_tags, mut end_tags, mut text_bytes, mut other, mut entries) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(start)) => {
                start_tags += 1;
                if start.local_name().as_ref() == b"Ntry" {
                    entries += 1;
                }
            }
            Ok(Event::End(_)) => end_tags += 1,
            Ok(Event::Text(text)) => text_bytes += text.len() as u64,
            Ok(Event::Eof) => break,
            Ok(_) => other += 1,
            Err(e) => {
                return Err(format!(
                    "{}: at byte {}: {e}",
                    path.display(),
                    reader.error_position()
                ))
            }
        }
        buf.clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"mode\":\"scan\",\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mb_per_s\":{:.1},\
\"entries\":{entries},\"start_tags\":{start_tags},\"end_tags\":{end_tags},\
\"text_bytes\":{text_bytes},\"other_events\":{other},\"peak_rss_kib\":{}}}",
        bytes as f64 / MB / seconds,
        peak_rss_kib()?,
    ))
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_owned())
}

// ---------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------

/// splitmix64: deterministic from the seed, no crate for ten lines.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(index).copied().unwrap_or_default()
    }
}

/// The statement's own account: identification, currency, owner's name.
struct Account {
    id: &'static str,
    iban: bool,
    currency: &'static str,
    owner: &'static str,
}

const ACCOUNTS: [Account; 4] = [
    Account {
        id: "31050161373600000123",
        iban: false,
        currency: "CNY",
        owner: "上海明远国际贸易有限公司",
    },
    Account {
        id: "110147098765432100",
        iban: false,
        currency: "CNY",
        owner: "上海明远国际贸易有限公司北京分公司",
    },
    Account {
        id: "4000023009200187654",
        iban: false,
        currency: "USD",
        owner: "Mingyuan International Trading (Shanghai) Co., Ltd.",
    },
    Account {
        id: "DE89370400440532013000",
        iban: true,
        currency: "EUR",
        owner: "Mingyuan Europe GmbH",
    },
];

const COUNTERPARTIES: [&str; 16] = [
    "北京中关村科技发展有限公司",
    "深圳前海微众供应链管理有限公司",
    "广州白云国际物流有限公司",
    "杭州西湖文化传媒有限公司",
    "成都天府软件园开发建设有限公司",
    "苏州工业园区精密机械制造有限公司",
    "张伟",
    "李娜",
    "ACME Trading Ltd",
    "Smith & Jones Logistics Ltd",
    "Müller & Söhne Maschinenbau GmbH",
    "Shenzhen Huaxin Electronics Co., Ltd.",
    "Pacific Rim Shipping Pte. Ltd.",
    "Hong Kong Star Ferry Supplies Limited",
    "Société Générale de Négoce SA",
    "Nordic Components AB",
];

const ADDRESS_LINES: [&str; 6] = [
    "上海市浦东新区世纪大道100号",
    "北京市海淀区中关村大街27号",
    "广东省深圳市南山区科技园南区",
    "1 Raffles Place, Singapore 048616",
    "Königsallee 92, 40212 Düsseldorf",
    "100 Queen's Road Central, Hong Kong",
];

const REMITTANCE_HEADS: [&str; 8] = [
    "货款 发票号",
    "服务费 合同号",
    "工资 2026年11月 批次",
    "运费 提单号",
    "Invoice payment, ref",
    "Payment for PO",
    "Rent November 2026, lease",
    "Refund of overpayment, case",
];

const BANK_TX_CODES: [&str; 6] = [
    "PMNT-RCDT-DMCT",
    "PMNT-ICDT-DMCT",
    "PMNT-RCDT-XBCT",
    "PMNT-ICDT-XBCT",
    "ACMT-MDOP-CHRG",
    "PMNT-RDDT-ESDD",
];

/// What one statement is: which account, which day, how many entries.
struct StatementPlan {
    index: u64,
    account: &'static Account,
    currency: Currency,
    day: BusinessDate,
    entries: usize,
    seed: u64,
}

fn generate_entry(rng: &mut Rng, plan: &StatementPlan, n: usize) -> Result<Entry, String> {
    let indicator = if rng.below(100) < 55 {
        CreditDebit::Credit
    } else {
        CreditDebit::Debit
    };
    // Amounts spread over orders of magnitude: 0.01 to 10 million.
    let digits = 1 + rng.below(9);
    let minor = 1 + rng.below(10u64.pow(u32::try_from(digits).unwrap_or(9)));
    let minor = i64::try_from(minor).map_err(|e| e.to_string())?;
    let status = if rng.below(100) < 3 {
        camt053::EntryStatus::Pending
    } else {
        camt053::EntryStatus::Booked
    };
    let value_date = plan
        .day
        .add_days(i64::try_from(rng.below(3)).unwrap_or(0))
        .map_err(|e| e.to_string())?;
    let compact = plan.day.to_compact();
    let serial = plan.index * 10_000_000 + n as u64;
    let counterparty = Party {
        name: Some(rng.pick(&COUNTERPARTIES).to_owned()),
        address_lines: if rng.below(4) == 0 {
            vec![rng.pick(&ADDRESS_LINES).to_owned()]
        } else {
            Vec::new()
        },
    };
    let owner = Party {
        name: Some(plan.account.owner.to_owned()),
        address_lines: Vec::new(),
    };
    let (debtor, creditor) = match indicator {
        CreditDebit::Credit => (counterparty, owner),
        CreditDebit::Debit => (owner, counterparty),
    };
    let mut remittance = vec![format!(
        "{} {}-{:08}",
        rng.pick(&REMITTANCE_HEADS),
        compact,
        rng.below(100_000_000)
    )];
    if rng.below(3) == 0 {
        remittance.push(format!(
            "订单 SO{:010} / 客户编号 C{:06} / 附言：请核对后入账",
            rng.below(10_000_000_000),
            rng.below(1_000_000)
        ));
    }
    Ok(Entry {
        reference: Some(format!("NTRY{serial:016}")),
        amount: Money::from_minor(minor, plan.currency),
        indicator,
        status,
        booking_date: Some(plan.day),
        value_date: Some(value_date),
        account_servicer_reference: Some(format!("{compact}BDS{serial:016}")),
        bank_transaction_code: Some(rng.pick(&BANK_TX_CODES).to_owned()),
        transactions: vec![TransactionDetails {
            end_to_end_id: Some(format!(
                "E2E-{compact}-{:012}",
                rng.below(1_000_000_000_000)
            )),
            debtor,
            creditor,
            remittance,
        }],
    })
}

fn money(minor: i64, currency: Currency) -> (Money, CreditDebit) {
    if minor < 0 {
        (
            Money::from_minor(minor.saturating_neg(), currency),
            CreditDebit::Debit,
        )
    } else {
        (Money::from_minor(minor, currency), CreditDebit::Credit)
    }
}

/// The header of a planned statement; the closing balances need its
/// entries' sum, so the entries are generated once here for the sum and
/// again (same seed, same values) when written.
fn statement_header(plan: &StatementPlan) -> Result<(StatementHeader, i128), String> {
    let mut rng = Rng(plan.seed);
    let mut movement = 0i128;
    for n in 0..plan.entries {
        let entry = generate_entry(&mut rng, plan, n)?;
        let minor = i128::from(entry.amount.minor());
        movement += match entry.indicator {
            CreditDebit::Credit => minor,
            CreditDebit::Debit => -minor,
        };
    }
    let opening_minor =
        i64::try_from(10_000_000_000 + plan.seed % 1_000_000_000).map_err(|e| e.to_string())?;
    let closing_minor = i64::try_from(i128::from(opening_minor) + movement)
        .map_err(|_| "closing balance out of range".to_owned())?;
    let balance = |kind, minor| {
        let (amount, indicator) = money(minor, plan.currency);
        camt053::Balance {
            kind,
            amount,
            indicator,
            date: plan.day,
        }
    };
    let account = if plan.account.iban {
        AccountIdentification::Iban(Iban::parse(plan.account.id).map_err(|e| e.to_string())?)
    } else {
        AccountIdentification::Other(plan.account.id.to_owned())
    };
    let header = StatementHeader {
        id: format!("STMT-{}-{:06}", plan.day.to_compact(), plan.index),
        electronic_sequence_number: Some(plan.index + 1),
        created_at: Some(format!("{}T18:00:00+08:00", plan.day)),
        account,
        currency: Some(plan.currency),
        balances: vec![
            balance(BalanceType::OpeningBooked, opening_minor),
            balance(BalanceType::ClosingBooked, closing_minor),
            balance(BalanceType::ClosingAvailable, closing_minor),
        ],
    };
    Ok((header, movement))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The index just after the `\n` before `at` (the start of `at`'s line).
fn line_start(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(..at)
        .and_then(|head| head.iter().rposition(|b| *b == b'\n'))
        .map_or(0, |newline| newline + 1)
}

/// The index just after the `\n` that ends `at`'s line.
fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .and_then(|tail| tail.iter().position(|b| *b == b'\n'))
        .map_or(bytes.len(), |newline| at + newline + 1)
}

/// The pieces of a rendered one-statement document without entries:
/// everything before `<Stmt>`, the statement from `<Stmt>` to its header's
/// end, the `</Stmt>` line, and the rest.
struct Pieces<'a> {
    prologue: &'a [u8],
    statement_open: &'a [u8],
    statement_close: &'a [u8],
    epilogue: &'a [u8],
}

fn cut_statement(doc: &[u8]) -> Result<Pieces<'_>, String> {
    let bad = || "render's output does not have the expected <Stmt> layout".to_owned();
    let open = line_start(doc, find(doc, b"<Stmt>").ok_or_else(bad)?);
    let close = line_start(doc, rfind(doc, b"</Stmt>").ok_or_else(bad)?);
    let after = line_end(doc, close);
    Ok(Pieces {
        prologue: doc.get(..open).ok_or_else(bad)?,
        statement_open: doc.get(open..close).ok_or_else(bad)?,
        statement_close: doc.get(close..after).ok_or_else(bad)?,
        epilogue: doc.get(after..).ok_or_else(bad)?,
    })
}

/// The `<Ntry>` elements of a rendered document, as rendered.
fn cut_entries(doc: &[u8]) -> Result<&[u8], String> {
    let bad = || "render's output does not have the expected <Ntry> layout".to_owned();
    let first = line_start(doc, find(doc, b"<Ntry>").ok_or_else(bad)?);
    let last = line_end(doc, rfind(doc, b"</Ntry>").ok_or_else(bad)?);
    doc.get(first..last).ok_or_else(bad)
}

/// The generated file and the bytes written to it so far.
struct Output<'a> {
    writer: BufWriter<File>,
    path: &'a Path,
    written: u64,
}

impl Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, String> {
        self.writer
            .flush()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        Ok(self.written)
    }
}

fn generate(
    out: &Path,
    size_mb: u64,
    seed: u64,
    entries_per_statement: usize,
) -> Result<String, String> {
    if size_mb == 0 || size_mb > MAX_SIZE_MB {
        return Err(format!(
            "--size-mb must be between 1 and {MAX_SIZE_MB}, got {size_mb}"
        ));
    }
    if entries_per_statement == 0 || entries_per_statement > MAX_ENTRIES_PER_STATEMENT {
        return Err(format!(
            "--entries-per-statement must be between 1 and {MAX_ENTRIES_PER_STATEMENT}"
        ));
    }
    let started = Instant::now();
    let target_bytes = size_mb * 1024 * 1024;
    let file = File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut file = Output {
        writer: BufWriter::with_capacity(1024 * 1024, file),
        path: out,
        written: 0,
    };
    let mut next_progress = PROGRESS_EVERY_BYTES;
    let group_header =
        GroupHeader::new(format!("BENCH-CAMT053-{seed}"), "2026-11-28T18:30:00+08:00");
    let first_day = BusinessDate::from_ymd(2026, 11, 2).map_err(|e| e.to_string())?;
    let mut base = Rng(seed);
    let mut entries_written = 0u64;
    let mut entry_bytes = 0u64;
    let mut signed_sum_minor = 0i128;
    let mut statements = 0u64;
    let epilogue = loop {
        // Enough entries to reach the target, by the entry size so far (a
        // first guess of 1500 bytes), at most --entries-per-statement.
        let average = entry_bytes
            .checked_div(entries_written)
            .unwrap_or(1_500)
            .max(1);
        let remaining = target_bytes.saturating_sub(file.written + 4_096);
        let wanted = usize::try_from(remaining / average + 1).unwrap_or(usize::MAX);
        let account = ACCOUNTS
            .get(usize::try_from(statements % ACCOUNTS.len() as u64).unwrap_or(0))
            .ok_or("no account")?;
        let plan = StatementPlan {
            index: statements,
            account,
            currency: Currency::from_code(account.currency).map_err(|e| e.to_string())?,
            day: first_day
                .add_days(i64::try_from(statements / ACCOUNTS.len() as u64).unwrap_or(0))
                .map_err(|e| e.to_string())?,
            entries: wanted.min(entries_per_statement),
            seed: base.next_u64(),
        };
        let (header, movement) = statement_header(&plan)?;
        let skeleton = camt053::render(&BankToCustomerStatement {
            group_header: group_header.clone(),
            statements: vec![Statement {
                header: header.clone(),
                entries: Vec::new(),
            }],
        })
        .map_err(|e| format!("rendering a statement header: {e}"))?;
        let pieces = cut_statement(&skeleton)?;
        if statements == 0 {
            file.write(pieces.prologue)?;
        }
        file.write(pieces.statement_open)?;
        let mut rng = Rng(plan.seed);
        let mut n = 0;
        while n < plan.entries {
            let count = RENDER_CHUNK_ENTRIES.min(plan.entries - n);
            let mut chunk = Vec::with_capacity(count);
            for _ in 0..count {
                chunk.push(generate_entry(&mut rng, &plan, n)?);
                n += 1;
            }
            let doc = camt053::render(&BankToCustomerStatement {
                group_header: group_header.clone(),
                statements: vec![Statement {
                    header: header.clone(),
                    entries: chunk,
                }],
            })
            .map_err(|e| format!("rendering entries: {e}"))?;
            let entries = cut_entries(&doc)?;
            file.write(entries)?;
            entry_bytes += entries.len() as u64;
            entries_written += count as u64;
            if file.written >= next_progress {
                eprintln!(
                    "camt_bench generate: {} of {size_mb} MB",
                    file.written / (1024 * 1024)
                );
                next_progress += PROGRESS_EVERY_BYTES;
            }
        }
        file.write(pieces.statement_close)?;
        signed_sum_minor += movement;
        statements += 1;
        if file.written + pieces.epilogue.len() as u64 + average >= target_bytes {
            break pieces.epilogue.to_vec();
        }
    };
    file.write(&epilogue)?;
    let written = file.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"mode\":\"generate\",\"bytes\":{written},\"seconds\":{seconds:.3},\"seed\":{seed},\
\"entries\":{entries_written},\"statements\":{statements},\"signed_sum_minor\":{signed_sum_minor}}}"
    ))
}
