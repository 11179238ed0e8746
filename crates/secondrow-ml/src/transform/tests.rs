use super::*;

fn table() -> Table {
    Table::new(vec![
        Column::number("age", vec![10.0, f64::NAN, 30.0, 40.0]),
        Column::text("job", vec![Some("tech".into()), None, Some("sales".into()), Some("tech".into())]),
        Column::number("label", vec![0.0, 1.0, 0.0, 1.0]),
    ])
}

fn numbers(t: &Table, name: &str) -> Vec<f64> {
    t.column(name).unwrap().to_numbers().unwrap()
}

#[test]
fn fit_then_apply_gives_the_same_result_and_keeps_the_label() {
    let spec = TransformSpec::parse(
        r#"[{"op": "impute", "strategy": "median", "columns": ["age"]},
            {"op": "standardize"},
            {"op": "impute", "strategy": "most_frequent", "columns": ["job"]},
            {"op": "one_hot"}]"#,
    )
    .unwrap();
    let (transformer, fitted) = Transformer::fit(&spec, &table(), Some("label")).unwrap();
    assert_eq!(transformer.output_columns, vec!["age", "job=sales", "job=tech"]);
    assert_eq!(fitted.column_names(), vec!["age", "job=sales", "job=tech", "label"]);
    // median of 10, 30, 40 is 30; then standardized.
    let age = numbers(&fitted, "age");
    assert!((age.iter().sum::<f64>()).abs() < 1e-9);
    assert_eq!(age[1], age[2]);
    assert_eq!(numbers(&fitted, "job=tech"), vec![1.0, 1.0, 0.0, 1.0]);
    assert_eq!(numbers(&fitted, "label"), vec![0.0, 1.0, 0.0, 1.0]);
    // Re-applied on data without the label and with an unseen category.
    let new = Table::new(vec![Column::number("age", vec![f64::NAN]), Column::text("job", vec![Some("pilot".into())])]);
    let applied = transformer.apply(&new).unwrap();
    assert_eq!(numbers(&applied, "age"), vec![age[1]]);
    assert_eq!(numbers(&applied, "job=tech"), vec![0.0]);
    assert_eq!(numbers(&applied, "job=sales"), vec![0.0]);
    // The transformer survives JSON.
    let json = serde_json::to_string(&transformer).unwrap();
    assert_eq!(serde_json::from_str::<Transformer>(&json).unwrap(), transformer);
}

#[test]
fn min_max_ordinal_drop_select() {
    let spec = TransformSpec::parse(
        r#"{"steps": [{"op": "min_max", "columns": ["age"]},
                      {"op": "ordinal", "columns": ["job"], "categories": {"job": ["sales", "tech"]}},
                      {"op": "select", "columns": ["age", "job"]}]}"#,
    )
    .unwrap();
    let (_, t) = Transformer::fit(&spec, &table(), Some("label")).unwrap();
    let age = numbers(&t, "age");
    assert_eq!((age[0], age[3]), (0.0, 1.0));
    assert_eq!(numbers(&t, "job"), vec![1.0, -1.0, 0.0, 1.0]);
    let spec = TransformSpec::parse(r#"[{"op": "drop", "columns": ["job"]}]"#).unwrap();
    let (_, t) = Transformer::fit(&spec, &table(), None).unwrap();
    assert_eq!(t.column_names(), vec!["age", "label"]);
}

#[test]
fn errors_name_the_column_or_argument() {
    let spec = TransformSpec::parse(r#"[{"op": "standardize", "columns": ["job"]}]"#).unwrap();
    let err = Transformer::fit(&spec, &table(), None).unwrap_err();
    assert!(err.to_string().contains("column `job`"), "{err}");
    let spec = TransformSpec::parse(r#"[{"op": "drop", "columns": ["nope"]}]"#).unwrap();
    let err = Transformer::fit(&spec, &table(), None).unwrap_err();
    assert!(err.to_string().starts_with("column `nope` not found"), "{err}");
    let err = TransformSpec::parse(r#"[{"op": "explode"}]"#).unwrap_err();
    assert!(err.to_string().starts_with("argument `spec`"), "{err}");
}
