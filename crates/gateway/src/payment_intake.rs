//! Parsing and validating a payment request body, field by field, so that
//! every problem names its field (`body.creditor.name`) and nothing invalid
//! reaches the store or a bank.
//!
//! The body is read as a JSON value first (a malformed document is a 400);
//! each field is then checked on its own (a wrong field is a 422). Checks
//! that depend on the bank — charset and byte lengths — are the connector's
//! (`BankConnector::check_payment`), run by the caller after these.

use domain::{
    AccountId, Bic, BusinessDate, CnapsCode, CreditorType, Currency, EndToEndId, Money, Urgency,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest creditor name accepted before the bank's own byte limit.
pub const MAX_CREDITOR_NAME_CHARS: usize = 200;
/// Longest creditor account accepted (before the bank's own limit).
pub const MAX_CREDITOR_ACCOUNT_CHARS: usize = 64;
pub const MAX_REMITTANCE_CHARS: usize = 140;
pub const MAX_PURPOSE_CHARS: usize = 140;
pub const MAX_BANK_NAME_CHARS: usize = 200;
/// How far ahead an execution date may be requested.
pub const MAX_EXECUTION_DAYS_AHEAD: i64 = 366;
/// Longest Idempotency-Key accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// One field's problem, for a 422 naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub code: &'static str,
    pub detail: String,
}

impl FieldProblem {
    fn new(field: &str, code: &'static str, detail: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: format!("body.{field}"),
            code,
            detail: detail.into(),
        }
    }
}

/// A payment request whose fields are each well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub debtor_account_id: AccountId,
    pub amount: Money,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<CnapsCode>,
    pub creditor_bic: Option<Bic>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    pub remittance: String,
    pub purpose: Option<String>,
    pub end_to_end_id: Option<EndToEndId>,
    pub requested_execution_date: Option<BusinessDate>,
    pub urgency: Urgency,
}

/// The request's canonical form (keys sorted, no insignificant whitespace)
/// hashed: two bodies that mean the same thing hash the same, so an
/// Idempotency-Key replay is recognised whatever the client's formatting.
pub fn canonical_hash(body: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    if let Some(inner) = map.get(*k) {
                        canonical(inner, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(body, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks an `Idempotency-Key` header value.
pub fn check_idempotency_key(raw: Option<&str>) -> Result<String, FieldProblem> {
    let problem = |detail: &str| FieldProblem {
        field: "header.Idempotency-Key".to_owned(),
        code: "invalid_idempotency_key",
        detail: detail.to_owned(),
    };
    let Some(key) = raw else {
        return Err(FieldProblem {
            field: "header.Idempotency-Key".to_owned(),
            code: "idempotency_key_required",
            detail: "POST /v1/payments needs an Idempotency-Key header (a unique value per payment, e.g. a UUID); resend the same key to retry safely".to_owned(),
        });
    };
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(problem("the Idempotency-Key must be 1 to 255 characters"));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(problem(
            "the Idempotency-Key must be visible ASCII characters without spaces",
        ));
    }
    Ok(key.to_owned())
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    field: &str,
    problems: &mut Vec<FieldProblem>,
) -> Option<&'a str> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            problems.push(FieldProblem::new(
                field,
                "invalid_type",
                format!("{field} must be a string"),
            ));
            None
        }
    }
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    field: &str,
    problems: &mut Vec<FieldProblem>,
) -> Option<&'a str> {
    let v = text(obj, name, field, problems);
    if v.is_none() && !problems.iter().any(|p| p.field == format!("body.{field}")) {
        problems.push(FieldProblem::new(
            field,
            "required",
            format!("{field} is required"),
        ));
    }
    v
}

/// Free text: trimmed, non-empty when present, no control characters, at
/// most `max` characters.
fn clean_text(
    value: &str,
    field: &str,
    max: usize,
    problems: &mut Vec<FieldProblem>,
) -> Option<String> {
    let t = value.trim();
    if t.is_empty() {
        problems.push(FieldProblem::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ));
        return None;
    }
    if t.chars().any(char::is_control) {
        problems.push(FieldProblem::new(
            field,
            "invalid_text",
            format!("{field} must not contain control characters (tabs, line breaks)"),
        ));
        return None;
    }
    let n = t.chars().count();
    if n > max {
        problems.push(FieldProblem::new(
            field,
            "too_long",
            format!("{field} has {n} characters; at most {max} are allowed"),
        ));
        return None;
    }
    Some(t.to_owned())
}

/// Parses the body. `currency_of` tells which currencies an account holds
/// (None: the account does not exist or is not visible to the caller);
/// `today` is the debtor bank's business date.
pub fn parse_payment(
    body: &Value,
    currencies_of: impl Fn(&AccountId) -> Option<Vec<Currency>>,
    today: impl Fn(&AccountId) -> Option<BusinessDate>,
) -> Result<PaymentRequest, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldProblem {
            field: "body".to_owned(),
            code: "invalid_type",
            detail: "the body must be a JSON object".to_owned(),
        }]);
    };
    const KNOWN: &[&str] = &[
        "debtor_account_id",
        "amount",
        "currency",
        "creditor",
        "remittance",
        "purpose",
        "end_to_end_id",
        "requested_execution_date",
        "urgency",
    ];
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) {
            problems.push(FieldProblem::new(
                k,
                "unknown_field",
                format!("{k} is not a field of a payment; check its spelling"),
            ));
        }
    }

    let debtor =
        required(obj, "debtor_account_id", "debtor_account_id", &mut problems).and_then(|raw| {
            match AccountId::parse(raw)
                .ok()
                .filter(|id| currencies_of(id).is_some())
            {
                Some(id) => Some(id),
                None => {
                    problems.push(FieldProblem::new(
                    "debtor_account_id",
                    "unknown_account",
                    "no account with this id is visible to you; list yours with GET /v1/accounts",
                ));
                    None
                }
            }
        });
    let currency = required(obj, "currency", "currency", &mut problems).and_then(|raw| {
        match Currency::from_code(raw) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(FieldProblem::new(
                    "currency",
                    "invalid_currency",
                    e.to_string(),
                ));
                None
            }
        }
    });
    if let (Some(d), Some(c)) = (&debtor, currency) {
        if let Some(held) = currencies_of(d) {
            if !held.contains(&c) {
                let list: Vec<&str> = held.iter().map(|h| h.code()).collect();
                problems.push(FieldProblem::new(
                    "currency",
                    "currency_not_held",
                    format!("account {d} holds {}, not {c}", list.join(", ")),
                ));
            }
        }
    }
    let amount = match (obj.get("amount"), currency) {
        (None | Some(Value::Null), _) => {
            problems.push(FieldProblem::new(
                "amount",
                "required",
                "amount is required, as a decimal string like \"1234.50\"",
            ));
            None
        }
        (Some(Value::String(raw)), Some(c)) => match Money::parse(raw, c) {
            Ok(m) if m.minor() > 0 => Some(m),
            Ok(_) => {
                problems.push(FieldProblem::new(
                    "amount",
                    "invalid_amount",
                    "amount must be greater than zero",
                ));
                None
            }
            Err(e) => {
                problems.push(FieldProblem::new("amount", e.code(), e.to_string()));
                None
            }
        },
        (Some(Value::String(_)), None) => None,
        (Some(_), _) => {
            problems.push(FieldProblem::new(
                "amount",
                "invalid_type",
                "amount must be a decimal string like \"1234.50\", never a JSON number (numbers lose precision)",
            ));
            None
        }
    };

    let mut creditor_name = None;
    let mut creditor_account = None;
    let mut bank_code = None;
    let mut bic = None;
    let mut bank_name = None;
    let mut creditor_type = None;
    match obj.get("creditor") {
        None | Some(Value::Null) => problems.push(FieldProblem::new(
            "creditor",
            "required",
            "creditor is required",
        )),
        Some(Value::Object(c)) => {
            for k in c.keys() {
                if !["name", "account", "bank_code", "bic", "bank_name", "type"]
                    .contains(&k.as_str())
                {
                    problems.push(FieldProblem::new(
                        &format!("creditor.{k}"),
                        "unknown_field",
                        format!("creditor.{k} is not a field of a creditor"),
                    ));
                }
            }
            creditor_name = required(c, "name", "creditor.name", &mut problems).and_then(|v| {
                clean_text(v, "creditor.name", MAX_CREDITOR_NAME_CHARS, &mut problems)
            });
            creditor_account = required(c, "account", "creditor.account", &mut problems).and_then(|v| {
                let compact: String = v.chars().filter(|ch| *ch != ' ').collect();
                let ok = !compact.is_empty()
                    && compact.chars().count() <= MAX_CREDITOR_ACCOUNT_CHARS
                    && compact.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
                if ok {
                    Some(compact)
                } else {
                    problems.push(FieldProblem::new(
                        "creditor.account",
                        "invalid_account",
                        format!("creditor.account must be 1 to {MAX_CREDITOR_ACCOUNT_CHARS} letters, digits or '-'"),
                    ));
                    None
                }
            });
            bank_code = text(c, "bank_code", "creditor.bank_code", &mut problems).and_then(|v| {
                match CnapsCode::parse(v) {
                    Ok(code) => Some(code),
                    Err(e) => {
                        problems.push(FieldProblem::new(
                            "creditor.bank_code",
                            e.code(),
                            e.to_string(),
                        ));
                        None
                    }
                }
            });
            bic = text(c, "bic", "creditor.bic", &mut problems).and_then(|v| match Bic::parse(v) {
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push(FieldProblem::new("creditor.bic", e.code(), e.to_string()));
                    None
                }
            });
            if c.get("bank_code").is_none_or(Value::is_null)
                && c.get("bic").is_none_or(Value::is_null)
            {
                problems.push(FieldProblem::new(
                    "creditor.bank_code",
                    "required",
                    "give the creditor's bank as bank_code (12-digit CNAPS code) or bic",
                ));
            }
            bank_name = text(c, "bank_name", "creditor.bank_name", &mut problems).and_then(|v| {
                clean_text(v, "creditor.bank_name", MAX_BANK_NAME_CHARS, &mut problems)
            });
            creditor_type = match required(c, "type", "creditor.type", &mut problems) {
                Some("corporate") => Some(CreditorType::Corporate),
                Some("personal") => Some(CreditorType::Personal),
                Some(_) => {
                    problems.push(FieldProblem::new(
                        "creditor.type",
                        "invalid_creditor_type",
                        "creditor.type must be `corporate` (对公) or `personal` (对私)",
                    ));
                    None
                }
                None => None,
            };
        }
        Some(_) => problems.push(FieldProblem::new(
            "creditor",
            "invalid_type",
            "creditor must be an object",
        )),
    }

    let remittance = required(obj, "remittance", "remittance", &mut problems)
        .and_then(|v| clean_text(v, "remittance", MAX_REMITTANCE_CHARS, &mut problems));
    let purpose = text(obj, "purpose", "purpose", &mut problems)
        .and_then(|v| clean_text(v, "purpose", MAX_PURPOSE_CHARS, &mut problems));
    let end_to_end_id = text(obj, "end_to_end_id", "end_to_end_id", &mut problems).and_then(|v| {
        match EndToEndId::parse(v) {
            Ok(id) => Some(id),
            Err(e) => {
                problems.push(FieldProblem::new("end_to_end_id", e.code(), e.to_string()));
                None
            }
        }
    });
    let requested_execution_date = text(
        obj,
        "requested_execution_date",
        "requested_execution_date",
        &mut problems,
    )
    .and_then(|v| match BusinessDate::parse_iso(v) {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(FieldProblem::new(
                "requested_execution_date",
                "invalid_date",
                "requested_execution_date must be a date written YYYY-MM-DD",
            ));
            None
        }
    });
    if let (Some(date), Some(d)) = (requested_execution_date, &debtor) {
        if let Some(today) = today(d) {
            let ahead = (date.naive() - today.naive()).num_days();
            if ahead < 0 {
                problems.push(FieldProblem::new(
                    "requested_execution_date",
                    "date_in_past",
                    format!("requested_execution_date is before today ({today}) in the bank's time zone"),
                ));
            } else if ahead > MAX_EXECUTION_DAYS_AHEAD {
                problems.push(FieldProblem::new(
                    "requested_execution_date",
                    "date_too_far",
                    format!("requested_execution_date is more than {MAX_EXECUTION_DAYS_AHEAD} days ahead"),
                ));
            }
        }
    }
    let urgency = match text(obj, "urgency", "urgency", &mut problems) {
        None => Some(Urgency::Normal),
        Some("normal") => Some(Urgency::Normal),
        Some("urgent") => Some(Urgency::Urgent),
        Some(_) => {
            problems.push(FieldProblem::new(
                "urgency",
                "invalid_urgency",
                "urgency must be `normal` or `urgent`",
            ));
            None
        }
    };

    match (
        debtor,
        amount,
        creditor_name,
        creditor_account,
        creditor_type,
        remittance,
        urgency,
    ) {
        (
            Some(debtor),
            Some(amount),
            Some(name),
            Some(account),
            Some(kind),
            Some(remittance),
            Some(urgency),
        ) if problems.is_empty() => Ok(PaymentRequest {
            debtor_account_id: debtor,
            amount,
            creditor_name: name,
            creditor_account: account,
            creditor_bank_code: bank_code,
            creditor_bic: bic,
            creditor_bank_name: bank_name,
            creditor_type: kind,
            remittance,
            purpose,
            end_to_end_id,
            requested_execution_date,
            urgency,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn accounts(id: &AccountId) -> Option<Vec<Currency>> {
        (id.as_str() == "east-1").then(|| vec![Currency::CNY])
    }

    fn today(_: &AccountId) -> Option<BusinessDate> {
        BusinessDate::parse_iso("2026-11-28").ok()
    }

    fn good() -> Value {
        json!({
            "debtor_account_id": "east-1",
            "amount": "1234.50",
            "currency": "CNY",
            "creditor": {"name": "上海某某贸易有限公司", "account": "6222 0000 1234 5678", "bank_code": "102290000001", "type": "corporate"},
            "remittance": "货款 2026-11",
        })
    }

    fn fields(body: Value) -> Vec<String> {
        parse_payment(&body, accounts, today)
            .unwrap_err()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn a_good_body_parses_with_defaults() {
        let p = parse_payment(&good(), accounts, today).unwrap();
        assert_eq!(p.amount.minor(), 123_450);
        assert_eq!(p.creditor_account, "6222000012345678");
        assert_eq!(p.urgency, Urgency::Normal);
        assert!(p.requested_execution_date.is_none());
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut b = good();
        b["amount"] = json!(1234.5);
        assert_eq!(fields(b), ["body.amount"]);
        let mut b = good();
        b["amount"] = json!("1234.567");
        assert_eq!(fields(b), ["body.amount"]);
        let mut b = good();
        b["currency"] = json!("USD");
        assert_eq!(fields(b), ["body.currency"]);
        let mut b = good();
        b["debtor_account_id"] = json!("south-9");
        assert_eq!(fields(b), ["body.debtor_account_id"]);
        let mut b = good();
        b["creditor"]["type"] = json!("company");
        assert_eq!(fields(b), ["body.creditor.type"]);
        let mut b = good();
        b["creditor"].as_object_mut().unwrap().remove("bank_code");
        assert_eq!(fields(b), ["body.creditor.bank_code"]);
        let mut b = good();
        b["requested_execution_date"] = json!("2026-11-27");
        assert_eq!(fields(b), ["body.requested_execution_date"]);
        let mut b = good();
        b["remittance"] = json!("line\nbreak");
        assert_eq!(fields(b), ["body.remittance"]);
        let mut b = good();
        b["colour"] = json!("red");
        assert_eq!(fields(b), ["body.colour"]);
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_spacing_but_not_values() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"y":"2","x":[1,2]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "b": { "x": [1, 2], "y": "2" }, "a": 1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":1,"b":{"y":"3","x":[1,2]}}"#).unwrap();
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&c));
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(check_idempotency_key(None).is_err());
        assert!(check_idempotency_key(Some("")).is_err());
        assert!(check_idempotency_key(Some("has space")).is_err());
        assert_eq!(check_idempotency_key(Some("a-1")).unwrap(), "a-1");
    }
}
