use crate::helpers::TestApp;

#[tokio::test]
async fn lists_accounts_of_every_bank_with_validated_fields() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let (status, body) = app.get("/v1/accounts", &token).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let expected: usize = app.sims.iter().map(|s| s.ledger().accounts().len()).sum();
    assert_eq!(items.len(), expected);
    assert!(body["next_cursor"].is_null());
    let banks: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|a| a["bank_id"].as_str().unwrap())
        .collect();
    assert_eq!(banks.into_iter().collect::<Vec<_>>(), ["east", "south"]);
    for a in items {
        for field in ["id", "bank_id", "number", "name"] {
            assert!(a[field].is_string(), "{field} in {a}");
        }
        assert!(!a["currencies"].as_array().unwrap().is_empty());
    }
    // The numbers and names are the bank's.
    let east_ledger = app.sim("east").ledger().accounts();
    let first = items.iter().find(|a| a["id"] == "east-1").unwrap();
    assert_eq!(first["number"], east_ledger[0].number);
    assert_eq!(first["name"], east_ledger[0].name);
    app.stop().await;
}

#[tokio::test]
async fn pages_with_opaque_cursors_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts?limit=2&cursor={c}"),
            None => "/v1/accounts?limit=2".to_owned(),
        };
        let (status, body) = app.get(&path, &token).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert!(c
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ordered, no repeats");
    assert_eq!(seen.len(), 6);
    app.stop().await;
}

#[tokio::test]
async fn one_account_by_id() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.erp, None).await;
    let (status, body) = app.get("/v1/accounts/south-2", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "south-2");
    assert_eq!(body["bank_id"], "south");
    app.stop().await;
}

#[tokio::test]
async fn an_account_the_client_is_not_entitled_to_is_a_404_exactly_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&app.limited, None).await;

    let (status, body) = app.get("/v1/accounts", &token).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["east-1"]);

    let (s_other, b_other) = app.get("/v1/accounts/south-1", &token).await;
    let (s_missing, b_missing) = app.get("/v1/accounts/no-such-account", &token).await;
    assert_eq!(s_other, 404);
    assert_eq!(s_missing, 404);
    assert_eq!(b_other["code"], "account_not_found");
    assert_eq!(b_other["code"], b_missing["code"]);
    assert_eq!(b_other["detail"], b_missing["detail"]);
    assert_eq!(b_other["field"], "path.id");
    for path in [
        "/v1/accounts/south-1/balance",
        "/v1/accounts/south-1/balance:refresh",
    ] {
        let (s, b) = if path.ends_with(":refresh") {
            app.post(path, &token).await
        } else {
            app.get(path, &token).await
        };
        assert_eq!(s, 404, "{path}: {b}");
        assert_eq!(b["code"], "account_not_found");
    }
    app.stop().await;
}
