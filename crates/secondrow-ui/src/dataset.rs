//! Dataset views beyond CSV: Parquet files as paged tables with their schema, and the built-in `statistics`
//! component's report (its JSON, `secondrow_ml::stats::TableStats`) as a per-column table with histograms.
//! Every piece of file content that reaches markup goes through [`esc`].

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use arrow_cast::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use secondrow_ml::stats::{ColumnStats, TableStats};

use crate::viz::{esc, format_number, CsvPage};

/// Whether the file starts with Parquet's magic bytes.
pub fn is_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PAR1"
}

/// A Parquet file's schema (name, Arrow type, nullable), its row count from the footer, and rows
/// `[offset, offset + limit)`: only those rows' batches are decoded, so a page costs the same at any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetPage {
    pub schema: Vec<(String, String, bool)>,
    pub total_rows: i64,
    pub page: CsvPage,
}

pub fn parquet_page(path: &Path, offset: usize, limit: usize) -> Result<ParquetPage, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let total_rows = builder.metadata().file_metadata().num_rows();
    let schema: Vec<(String, String, bool)> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable()))
        .collect();
    let reader = builder
        .with_offset(offset)
        .with_limit(limit + 1)
        .with_batch_size(limit + 1)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let options = FormatOptions::default().with_null("");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading the Parquet file: {e}"))?;
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for i in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let page = CsvPage {
        header: schema.iter().map(|(n, _, _)| n.clone()).collect(),
        types: schema.iter().map(|(_, t, _)| t.clone()).collect(),
        rows,
        more,
    };
    Ok(ParquetPage { schema, total_rows, page })
}

/// The schema as a small table (what the column headers abbreviate).
pub fn schema_html(p: &ParquetPage) -> String {
    let mut s = format!(
        "<details class=\"schema\"><summary>Schema: {} columns, {} rows</summary><table class=\"kv\"><thead><tr><th>Column</th><th>Type</th><th>Nullable</th></tr></thead><tbody>",
        p.schema.len(),
        p.total_rows
    );
    for (name, ty, nullable) in &p.schema {
        let _ = write!(
            s,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(name),
            esc(ty),
            if *nullable { "yes" } else { "no" }
        );
    }
    s.push_str("</tbody></table></details>");
    s
}

/// The statistics JSON, if `text` is one (what the `statistics` component writes).
pub fn parse_stats(text: &str) -> Option<TableStats> {
    serde_json::from_str(text).ok()
}

/// A statistics report: the table's size, then one row per column (type, count, missing, distinct, range,
/// mean, standard deviation, most frequent values) with its histogram as a small SVG bar chart.
pub fn stats_html(stats: &TableStats) -> String {
    let mut s = format!(
        "<div class=\"stats\"><p class=\"stats-size\">{} rows · {} columns</p><table class=\"stats dataset\"><thead><tr>\
         <th>Column</th><th>Type</th><th>Count</th><th>Missing</th><th>Distinct</th><th>Min</th><th>Max</th><th>Mean</th><th>Std</th>\
         <th>Top values</th><th>Histogram</th></tr></thead><tbody>",
        stats.rows,
        stats.columns.len()
    );
    let num = |v: Option<f64>| v.map(format_number).unwrap_or_default();
    for c in &stats.columns {
        let top: Vec<String> =
            c.top_values.iter().take(3).map(|(v, n)| format!("{} ({n})", esc(&clip(v, 32)))).collect();
        let missing_pct = if c.missing > 0 {
            format!(" <small>{:.1}%</small>", 100.0 * c.missing as f64 / (c.count + c.missing) as f64)
        } else {
            String::new()
        };
        let _ = write!(
            s,
            "<tr data-column=\"{name}\"><th>{name}</th><td>{ty}</td><td class=\"num\">{count}</td><td class=\"num\">{missing}{missing_pct}</td>\
             <td class=\"num\">{distinct}</td><td class=\"num\">{min}</td><td class=\"num\">{max}</td><td class=\"num\">{mean}</td>\
             <td class=\"num\">{std}</td><td>{top}</td><td>{hist}</td></tr>",
            name = esc(&c.name),
            ty = esc(&c.kind),
            count = c.count,
            missing = c.missing,
            distinct = c.distinct,
            min = num(c.min),
            max = num(c.max),
            mean = num(c.mean),
            std = num(c.std),
            top = top.join(", "),
            hist = histogram_svg(c),
        );
    }
    s.push_str("</tbody></table></div>");
    s
}

/// A column's histogram as bars (each with its bin and count as a tooltip); empty for text columns.
fn histogram_svg(c: &ColumnStats) -> String {
    const W: f64 = 160.0;
    const H: f64 = 40.0;
    let Some(h) = &c.histogram else { return String::new() };
    if h.counts.is_empty() {
        return String::new();
    }
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = W / h.counts.len() as f64;
    let mut s = format!(
        r#"<svg class="histogram" role="img" aria-label="histogram of {}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&c.name)
    );
    for (i, &n) in h.counts.iter().enumerate() {
        let bh = (n as f64 / max * (H - 2.0)).max(if n > 0 { 1.0 } else { 0.0 });
        let (lo, hi) = (h.edges.get(i).copied().unwrap_or(f64::NAN), h.edges.get(i + 1).copied().unwrap_or(f64::NAN));
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{bh:.2}"><title>{lo} – {hi}: {n}</title></rect>"#,
            x = i as f64 * bw + 0.5,
            y = H - bh,
            w = (bw - 1.0).max(0.5),
            lo = format_number(lo),
            hi = format_number(hi),
        );
    }
    s.push_str("</svg>");
    s
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn write_parquet(path: &Path, n: i64) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("label", DataType::Utf8, true),
        ]));
        let file = File::create(path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        // Several batches, so pages cross batch (and row group) boundaries.
        for start in (0..n).step_by(70) {
            let ids: Vec<i64> = (start..(start + 70).min(n)).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(Float64Array::from(
                        ids.iter().map(|&i| if i % 10 == 3 { None } else { Some(i as f64 / 2.0) }).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(ids.iter().map(|i| format!("<b>{i}</b>")).collect::<Vec<_>>())),
                ],
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
    }

    #[test]
    fn parquet_pages_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.parquet");
        write_parquet(&path, 230);
        assert!(is_parquet(&path));
        let p = parquet_page(&path, 0, 50).unwrap();
        assert_eq!(p.total_rows, 230);
        assert_eq!(
            p.schema,
            [
                ("id".into(), "Int64".into(), false),
                ("score".into(), "Float64".into(), true),
                ("label".into(), "Utf8".into(), true)
            ]
        );
        assert_eq!(p.page.rows.len(), 50);
        assert_eq!(p.page.rows[3], ["3", "", "<b>3</b>"]);
        assert!(p.page.more);
        // A page across a batch boundary, and the last page.
        let p = parquet_page(&path, 60, 20).unwrap();
        assert_eq!(
            p.page.rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
            (60..80).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(p.page.rows[0][1], "30.0");
        let p = parquet_page(&path, 200, 50).unwrap();
        assert_eq!(p.page.rows.len(), 30);
        assert!(!p.page.more);
        let html = schema_html(&p);
        assert!(html.contains("3 columns, 230 rows") && html.contains("<code>Float64</code>"));
        // Not Parquet.
        let csv = dir.path().join("data.csv");
        std::fs::write(&csv, "a,b\n1,2\n").unwrap();
        assert!(!is_parquet(&csv));
        assert!(parquet_page(&csv, 0, 10).is_err());
    }

    #[test]
    fn statistics_report_escapes_and_draws_histograms() {
        let json = serde_json::json!({"rows": 4, "columns": [
            {"name": "<x>", "type": "number", "count": 3, "missing": 1, "distinct": 3, "top_values": [["1", 1]],
             "min": 1.0, "max": 3.0, "mean": 2.0, "std": 0.816, "histogram": {"edges": [1.0, 2.0, 3.0], "counts": [1, 2]}},
            {"name": "city", "type": "string", "count": 4, "missing": 0, "distinct": 2,
             "top_values": [["<script>", 3], ["Oslo", 1]]}
        ]});
        let stats = parse_stats(&json.to_string()).unwrap();
        let html = stats_html(&stats);
        assert!(html.contains("4 rows · 2 columns"));
        assert!(
            html.contains("<th>&lt;x&gt;</th>") && html.contains("&lt;script&gt; (3)") && !html.contains("<script>")
        );
        assert_eq!(html.matches("class=\"bar\"").count(), 2);
        assert!(html.contains("25.0%"), "{html}");
        assert_eq!(html.matches("<svg").count(), 1, "no histogram for text");
        assert!(parse_stats("{\"rows\": 1}").is_none() && parse_stats("[1]").is_none());
    }
}
