use serde_json::{json, Value};

use super::*;

const KEYS: &[&str] = &["display_name", "state", "created_at"];

fn items() -> Vec<Value> {
    (0..5)
        .map(|i| {
            json!({"id": i, "display_name": format!("r{i}"), "state": if i % 2 == 0 { "SUCCEEDED" } else { "FAILED" },
                   "created_at": format!("2026-01-01T00:00:0{i}Z")})
        })
        .collect()
}

fn check(filter: &str, sort: &str, size: &str, expect: &[i64]) {
    let q = ListQuery {
        filter: Some(filter.into()),
        sort_by: Some(sort.into()),
        page_size: Some(size.into()),
        ..Default::default()
    };
    let page = paginate(items(), &q, KEYS).unwrap();
    let ids: Vec<i64> = page.items.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, expect);
}

#[test]
fn filters_by_name_or_number() {
    check(r#"{"predicates":[{"operation":"EQUALS","key":"state","string_value":"FAILED"}]}"#, "", "10", &[1, 3]);
    check(r#"{"predicates":[{"operation":1,"key":"display_name","stringValue":"r2"}]}"#, "", "10", &[2]);
    check(
        r#"{"predicates":[{"operation":"IN","key":"display_name","string_values":{"values":["r0","r4"]}}]}"#,
        "",
        "10",
        &[0, 4],
    );
    check(
        r#"{"predicates":[{"operation":"GREATER_THAN","key":"created_at","timestamp_value":"2026-01-01T00:00:02Z"}]}"#,
        "",
        "10",
        &[3, 4],
    );
    check(r#"{"predicates":[{"operation":"IS_SUBSTRING","key":"name","string_value":"3"}]}"#, "", "10", &[3]);
}

#[test]
fn sorts_and_pages() {
    check("", "created_at desc", "10", &[4, 3, 2, 1, 0]);
    check("", "display_name", "2", &[0, 1]);
    let q = ListQuery { page_size: Some("2".into()), ..Default::default() };
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let q = ListQuery {
            page_token: token.clone(),
            ..ListQuery { page_size: q.page_size.clone(), ..Default::default() }
        };
        let page = paginate(items(), &q, KEYS).unwrap();
        assert_eq!(page.total_size, 5);
        seen.extend(page.items.iter().map(|v| v["id"].as_i64().unwrap()));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
}

#[test]
fn rejects_unknown_keys_operations_and_tokens() {
    for (filter, sort, token) in [
        (r#"{"predicates":[{"operation":"EQUALS","key":"nope","string_value":"x"}]}"#, "", ""),
        (r#"{"predicates":[{"operation":"LIKE","key":"state","string_value":"x"}]}"#, "", ""),
        (r#"{"predicates":[{"operation":4,"key":"state","string_value":"x"}]}"#, "", ""),
        ("{not json", "", ""),
        ("", "nope", ""),
        ("", "state sideways", ""),
        ("", "", "garbage"),
    ] {
        let q = ListQuery {
            filter: Some(filter.into()),
            sort_by: Some(sort.into()),
            page_token: Some(token.into()),
            ..Default::default()
        };
        assert!(matches!(paginate(items(), &q, KEYS), Err(ApiError::InvalidArgument(_))), "{filter} {sort} {token}");
    }
}

#[test]
fn run_listing_becomes_one_sql_query() {
    let keys = crate::runs::KEYS;
    let q = ListQuery {
        filter: Some(
            r#"{"predicates":[{"operation":"IS_SUBSTRING","key":"name","string_value":"r"},
                              {"operation":"GREATER_THAN","key":"created_at","timestamp_value":"1970-01-01T00:00:01Z"},
                              {"operation":"IN","key":"state","string_values":{"values":["FAILED","SUCCEEDED"]}}]}"#
                .into(),
        ),
        sort_by: Some("finished_at desc".into()),
        page_size: Some("5".into()),
        page_token: Some(encode_token(10)),
        ..Default::default()
    };
    let scope = vec![RunFilter::eq(RunColumn::Namespace, "a")];
    let (sql, offset) = run_list_query(&q, keys, scope).unwrap();
    assert_eq!(offset, 10);
    assert_eq!((sql.offset, sql.limit, sql.count_total), (10, 5, true));
    assert_eq!(sql.sort, RunSort { column: RunColumn::FinishedAt, descending: true });
    let ops: Vec<(RunColumn, CmpOp)> = sql.filters.iter().map(|f| (f.column, f.op)).collect();
    assert_eq!(
        ops,
        [
            (RunColumn::Namespace, CmpOp::Eq),
            (RunColumn::DisplayName, CmpOp::Contains),
            (RunColumn::CreatedAt, CmpOp::Gt),
            (RunColumn::State, CmpOp::In)
        ]
    );
    assert_eq!(sql.filters[2].values, [SqlValue::Int(1000)]);
    // Unsorted: oldest first. A string compared with a time is a 400.
    let (sql, _) = run_list_query(&ListQuery::default(), keys, Vec::new()).unwrap();
    assert_eq!(sql.sort, RunSort { column: RunColumn::CreatedAt, descending: false });
    let bad = ListQuery {
        filter: Some(r#"{"predicates":[{"operation":"EQUALS","key":"created_at","string_value":"x"}]}"#.into()),
        ..Default::default()
    };
    assert!(matches!(run_list_query(&bad, keys, Vec::new()), Err(ApiError::InvalidArgument(_))));
    let page = sql_page(vec![json!(1), json!(2)], 4, true, Some(9));
    assert_eq!((page.total_size, page.next_page_token), (9, Some(encode_token(6))));
}

#[test]
fn crafted_page_tokens_cannot_wrap() {
    // A token carrying usize::MAX used to overflow `offset + page_size` (a panic, so no answer) and wrap
    // to a negative SQL offset.
    for offset in [usize::MAX, usize::MAX - 5, (i64::MAX as usize) + 1, MAX_OFFSET + 1] {
        let q = ListQuery { page_token: Some(encode_token(offset)), ..ListQuery::default() };
        assert!(matches!(paginate(items(), &q, &["name"]), Err(ApiError::InvalidArgument(_))), "{offset}");
        assert!(matches!(run_list_query(&q, &[], Vec::new()), Err(ApiError::InvalidArgument(_))), "{offset}");
    }
    let q = ListQuery { page_token: Some(encode_token(MAX_OFFSET)), ..ListQuery::default() };
    assert_eq!(paginate(items(), &q, &["name"]).unwrap().items.len(), 0);
}

#[test]
fn other_listings_become_one_sql_query() {
    let keys = &["experiment_id", "display_name", "created_at"];
    let column = |k: &str| (k == "experiment_id").then_some("id");
    let q = ListQuery {
        filter: Some(
            r#"{"predicates":[{"operation":"IS_SUBSTRING","key":"name","string_value":"x"},
                {"operation":"LESS_THAN","key":"created_at","timestamp_value":"2026-01-01T00:00:01Z"},
                {"operation":"IN","key":"experiment_id","string_values":{"values":["a","b"]}}]}"#
                .into(),
        ),
        sort_by: Some("experiment_id desc".into()),
        page_size: Some("5".into()),
        page_token: Some(encode_token(10)),
        ..Default::default()
    };
    let (r, offset) = list_request(&q, keys, column, vec![ListFilter::eq("namespace", "ns")]).unwrap();
    assert_eq!(offset, 10);
    assert_eq!((r.offset, r.limit, r.count_total), (10, 5, true));
    assert_eq!(r.sort, Some(("id".to_owned(), true)));
    assert_eq!(
        r.filters,
        [
            ListFilter::eq("namespace", "ns"),
            ListFilter { column: "display_name".into(), op: CmpOp::Contains, values: vec![SqlValue::Text("x".into())] },
            ListFilter { column: "created_at".into(), op: CmpOp::Lt, values: vec![SqlValue::Int(1_767_225_601_000)] },
            ListFilter {
                column: "id".into(),
                op: CmpOp::In,
                values: vec![SqlValue::Text("a".into()), SqlValue::Text("b".into())]
            },
        ]
    );
    let page = sql_page(vec![json!(1)], offset, true, Some(30));
    assert_eq!(page.next_page_token, Some(encode_token(11)));
    // Unknown keys, and a time compared with text, are the caller's error.
    let bad = ListQuery {
        filter: Some(r#"{"predicates":[{"operation":1,"key":"spec","string_value":"x"}]}"#.into()),
        ..Default::default()
    };
    assert!(list_request(&bad, keys, column, Vec::new()).is_err());
    let bad = ListQuery {
        filter: Some(r#"{"predicates":[{"operation":1,"key":"created_at","string_value":"soon"}]}"#.into()),
        ..Default::default()
    };
    assert!(list_request(&bad, keys, column, Vec::new()).is_err());
}
