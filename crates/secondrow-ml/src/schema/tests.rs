use super::*;
use crate::table::Column;

fn table() -> Table {
    Table::new(vec![
        Column::number("age", vec![20.0, 30.0, 40.0, f64::NAN]),
        Column::text(
            "city",
            vec![Some("north".into()), Some("south".into()), Some("north".into()), Some("north".into())],
        ),
    ])
}

#[test]
fn inferred_schema_accepts_its_own_data() {
    let schema = infer(&table(), 10);
    assert_eq!(schema.columns[0].kind, ColumnType::Integer);
    assert_eq!((schema.columns[0].min, schema.columns[0].max), (Some(20.0), Some(40.0)));
    assert_eq!(schema.columns[1].allowed, Some(vec!["north".to_string(), "south".to_string()]));
    assert_eq!(validate(&table(), &schema), vec![]);
}

#[test]
fn validation_reports_every_anomaly() {
    let schema: Schema = serde_json::from_str(
        r#"{"columns": [
            {"name": "age", "type": "number", "min": 25, "max": 35, "max_missing_ratio": 0.1},
            {"name": "city", "type": "string", "allowed": ["north"]},
            {"name": "income", "type": "number"}
        ], "allow_extra_columns": true}"#,
    )
    .unwrap();
    let kinds: Vec<(String, String, usize)> =
        validate(&table(), &schema).into_iter().map(|a| (a.column, a.kind, a.count)).collect();
    assert_eq!(
        kinds,
        vec![
            ("age".into(), "too_many_missing".into(), 1),
            ("age".into(), "below_min".into(), 1),
            ("age".into(), "above_max".into(), 1),
            ("city".into(), "unexpected_category".into(), 1),
            ("income".into(), "missing_column".into(), 0),
        ]
    );
}

#[test]
fn type_mismatch_names_an_example_value() {
    let t = Table::new(vec![Column::text("x", vec![Some("1".into()), Some("two".into())])]);
    let schema: Schema = serde_json::from_str(r#"{"columns": [{"name": "x", "type": "number"}]}"#).unwrap();
    let anomalies = validate(&t, &schema);
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0].message, "1 value(s) are not of type number, e.g. `two`");
}
