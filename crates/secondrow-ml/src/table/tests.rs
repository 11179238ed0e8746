use super::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reads_csv_with_types_and_missing_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.csv", "x,city,flag\n1.5,north,1\n,south,0\n3,,1\n");
    let table = Table::read(&path).unwrap();
    assert_eq!(table.column_names(), ["x", "city", "flag"]);
    let ColumnValues::Number(x) = &table.column("x").unwrap().values else { panic!("x is numeric") };
    assert_eq!(x[0], 1.5);
    assert!(x[1].is_nan());
    assert_eq!(
        table.column("city").unwrap().values,
        ColumnValues::Text(vec![Some("north".into()), Some("south".into()), None])
    );
    assert_eq!(table.column("flag").unwrap().to_numbers().unwrap(), vec![1.0, 0.0, 1.0]);
}

#[test]
fn csv_and_parquet_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::new(vec![
        Column::number("a", vec![1.0, 2.5, f64::NAN]),
        Column::number("n", vec![1.0, 2.0, 3.0]),
        Column::text("s", vec![Some("x".into()), None, Some("z, with comma".into())]),
    ]);
    for format in [TableFormat::Csv, TableFormat::Parquet] {
        let path = dir.path().join("t");
        table.write(&path, format).unwrap();
        let (back, detected) = Table::read_with_format(&path).unwrap();
        assert_eq!(detected, format);
        assert_eq!(back.column_names(), table.column_names());
        assert_eq!(back.column("n").unwrap().to_numbers().unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(back.column("s").unwrap().values, table.column("s").unwrap().values);
        let a = back.column("a").unwrap().to_numbers().unwrap();
        assert_eq!(&a[..2], &[1.0, 2.5]);
        assert!(a[2].is_nan());
    }
}

#[test]
fn empty_and_header_only_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.csv", ""), ("header.csv", "a,b\n")] {
        let path = write(dir.path(), name, text);
        let err = Table::read(&path).unwrap_err();
        assert!(matches!(err, Error::EmptyData { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Table::read(&dir.path().join("nope.csv")).unwrap_err();
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn feature_matrix_names_non_numeric_and_missing_columns() {
    let table = Table::new(vec![
        Column::text("f", vec![Some("1".into()), Some("abc".into())]),
        Column::number("g", vec![1.0, f64::NAN]),
    ]);
    let err = table.feature_matrix(&["f".into()]).unwrap_err();
    assert_eq!(err.to_string(), "column `f`: non-numeric value `abc` in row 2");
    let err = table.feature_matrix(&["g".into()]).unwrap_err();
    assert!(err.to_string().starts_with("column `g`: 1 missing value(s)"), "{err}");
    let err = table.feature_matrix(&["h".into()]).unwrap_err();
    assert_eq!(err.to_string(), "column `h` not found (available: f, g)");
}
