//! Artifact visualizations rendered on the server: `system.Metrics` scalars, `system.ClassificationMetrics`
//! as a confusion-matrix heat map and a ROC curve (SVG), `system.Markdown` as safe HTML, CSV datasets as
//! paged tables. Every piece of user text that reaches markup goes through [`esc`].

use std::fmt::Write as _;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde_json::Value;

/// Escapes text for HTML and SVG (content and attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Scalar metrics (`system.Metrics` metadata: name → number), sorted by name.
pub fn scalar_metrics(metadata: &Value) -> Vec<(String, String)> {
    let Some(obj) = metadata.as_object() else { return Vec::new() };
    let mut out: Vec<(String, String)> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "display_name")
        .filter_map(|(k, v)| match v {
            Value::Number(n) => Some((k.clone(), format_number(n.as_f64().unwrap_or(f64::NAN)))),
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A confusion matrix from `system.ClassificationMetrics` metadata (`confusionMatrix`).
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    pub classes: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

pub fn confusion(metadata: &Value) -> Option<Confusion> {
    let cm = metadata.get("confusionMatrix")?;
    let classes: Vec<String> = cm
        .get("annotationSpecs")?
        .as_array()?
        .iter()
        .map(|a| a.get("displayName").and_then(Value::as_str).unwrap_or("?").to_owned())
        .collect();
    let rows: Vec<Vec<f64>> = cm
        .get("rows")?
        .as_array()?
        .iter()
        .map(|r| r.get("row").and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_f64).collect()))
        .collect::<Option<_>>()?;
    (!classes.is_empty() && rows.len() == classes.len() && rows.iter().all(|r| r.len() == classes.len()))
        .then_some(Confusion { classes, rows })
}

/// ROC points (false-positive rate, recall) from `confidenceMetrics`, sorted by FPR.
pub fn roc_points(metadata: &Value) -> Vec<(f64, f64)> {
    let Some(list) = metadata.get("confidenceMetrics").and_then(Value::as_array) else { return Vec::new() };
    let mut pts: Vec<(f64, f64)> = list
        .iter()
        .filter_map(|p| {
            let fpr = p.get("falsePositiveRate")?.as_f64()?;
            let tpr = p.get("recall")?.as_f64()?;
            (fpr.is_finite() && tpr.is_finite()).then_some((fpr.clamp(0.0, 1.0), tpr.clamp(0.0, 1.0)))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

/// The confusion matrix as an SVG heat map (rows: true class, columns: predicted).
pub fn confusion_svg(c: &Confusion) -> String {
    let n = c.classes.len();
    let cell = if n <= 4 { 64.0 } else { (320.0 / n as f64).max(18.0) };
    let label_w = 110.0;
    let top = 40.0;
    let size = cell * n as f64;
    let max = c.rows.iter().flatten().copied().fold(0.0f64, f64::max).max(1e-12);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="confusion" role="img" aria-label="confusion matrix" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">"#,
        w = label_w + size + 10.0,
        h = top + size + 40.0
    );
    let _ =
        write!(s, r#"<text x="{}" y="14" class="axis" text-anchor="middle">predicted</text>"#, label_w + size / 2.0);
    for (j, name) in c.classes.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{}" y="32" class="axis" text-anchor="middle">{}</text>"#,
            label_w + (j as f64 + 0.5) * cell,
            esc(&truncate(name, 12))
        );
    }
    for (i, row) in c.rows.iter().enumerate() {
        let y = top + i as f64 * cell;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + cell / 2.0 + 4.0,
            esc(&truncate(&c.classes[i], 14))
        );
        for (j, v) in row.iter().enumerate() {
            let t = (v / max).clamp(0.0, 1.0);
            let x = label_w + j as f64 * cell;
            let _ = write!(
                s,
                r##"<rect class="cm-cell" data-row="{i}" data-col="{j}" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgba(37,99,235,{a:.3})" stroke="#8884"/><text x="{tx}" y="{ty}" text-anchor="middle" class="{cls}">{val}</text>"##,
                a = 0.08 + 0.92 * t,
                tx = x + cell / 2.0,
                ty = y + cell / 2.0 + 4.0,
                cls = if t > 0.55 { "cm-dark" } else { "cm-light" },
                val = format_number(*v)
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="14" y="{}" class="axis" transform="rotate(-90 14 {})" text-anchor="middle">true</text></svg>"#,
        top + size / 2.0,
        top + size / 2.0
    );
    s
}

/// Series colours: the n-th run of a comparison has the n-th colour in every chart of the page.
pub const COLOURS: [&str; 10] =
    ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d", "#854d0e", "#475569"];

/// The colour of the `i`-th series or run.
pub fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

/// One ROC series: its label, its colour and its points (false positive rate, true positive rate).
pub struct RocSeries {
    pub label: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a run's second curve in a comparison).
    pub dashed: bool,
}

/// ROC curves (one per labelled series) as an SVG line chart with the chance diagonal.
pub fn roc_svg(series: &[(String, Vec<(f64, f64)>)]) -> String {
    let series: Vec<RocSeries> = series
        .iter()
        .enumerate()
        .map(|(i, (label, points))| RocSeries {
            label: label.clone(),
            colour: colour(i),
            points: points.clone(),
            dashed: false,
        })
        .collect();
    roc_svg_coloured(&series)
}

/// [`roc_svg`] with each series' colour given (a comparison colours every chart by run).
pub fn roc_svg_coloured(series: &[RocSeries]) -> String {
    const W: f64 = 300.0;
    const PAD: f64 = 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="roc" role="img" aria-label="ROC curve" viewBox="0 0 {t} {t}" width="{t}" height="{t}" xmlns="http://www.w3.org/2000/svg">"#,
        t = W + 2.0 * PAD
    );
    let _ = write!(
        s,
        r##"<rect x="{PAD}" y="{PAD}" width="{W}" height="{W}" fill="none" stroke="#8888"/><line x1="{PAD}" y1="{b}" x2="{r}" y2="{PAD}" stroke="#8888" stroke-dasharray="4 4"/>"##,
        b = PAD + W,
        r = PAD + W
    );
    for k in 0..=4 {
        let v = k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" class="axis" text-anchor="middle">{v}</text><text x="{x2}" y="{y2}" class="axis" text-anchor="end">{v}</text>"#,
            x = PAD + v * W,
            y = PAD + W + 14.0,
            x2 = PAD - 4.0,
            y2 = PAD + W - v * W + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">false positive rate</text><text x="12" y="{}" class="axis" transform="rotate(-90 12 {})" text-anchor="middle">true positive rate</text>"#,
        PAD + W / 2.0,
        PAD + W + 32.0,
        PAD + W / 2.0,
        PAD + W / 2.0
    );
    for (i, RocSeries { label, colour, points: pts, dashed }) in series.iter().enumerate() {
        let mut d = String::new();
        for (k, (x, y)) in std::iter::once((0.0, 0.0)).chain(pts.iter().copied()).chain([(1.0, 1.0)]).enumerate() {
            let _ = write!(d, "{}{:.2},{:.2}", if k == 0 { "M" } else { " L" }, PAD + x * W, PAD + W - y * W);
        }
        let _ = write!(
            s,
            r#"<path class="roc-line" d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{}</title></path>"#,
            esc(label),
            dash = if *dashed { r#" stroke-dasharray="6 3""# } else { "" }
        );
        if series.len() > 1 {
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" class="legend" fill="{colour}" text-anchor="end">{}</text>"#,
                PAD + W - 6.0,
                PAD + W - 8.0 - 14.0 * i as f64,
                esc(&truncate(label, 30))
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One axis of a parallel-coordinates plot: its name and whether it is the chosen metric.
pub struct PcAxis {
    pub name: String,
    pub metric: bool,
}

/// One line of a parallel-coordinates plot: a run, its colour and its value on every axis (NaN, or left
/// out at the end, where the run has none).
pub struct PcLine {
    pub id: String,
    pub label: String,
    pub colour: &'static str,
    pub values: Vec<f64>,
}

/// Where `v` sits between `lo` and `hi`, from 0 to 1 (the middle when the axis has one value).
fn unit(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// A parallel-coordinates plot as SVG: one vertical axis per entry of `axes` (each scaled to its own range,
/// the minimum at the bottom, its range written at both ends); each line a polyline through its values, broken
/// where a value is missing (a value with no neighbour is a dot).
pub fn parallel_svg(axes: &[PcAxis], lines: &[PcLine]) -> String {
    const GAP: f64 = 150.0;
    const PAD_X: f64 = 70.0;
    const TOP: f64 = 44.0;
    const H: f64 = 220.0;
    let width = PAD_X * 2.0 + GAP * (axes.len().max(2) - 1) as f64;
    let height = TOP + H + 40.0;
    let x_of = |k: usize| PAD_X + GAP * k as f64;
    let ranges: Vec<(f64, f64)> = (0..axes.len())
        .map(|k| {
            let vals = lines.iter().map(|l| l.values.get(k).copied().unwrap_or(f64::NAN)).filter(|v| v.is_finite());
            vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
        })
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="parallel" role="img" aria-label="parallel coordinates of parameters and a metric" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (k, axis) in axes.iter().enumerate() {
        let x = x_of(k);
        let (lo, hi) = ranges[k];
        let _ = write!(
            s,
            r##"<line class="pc-axis{m}" x1="{x}" y1="{TOP}" x2="{x}" y2="{b}" stroke="#888" stroke-width="{sw}"/><text x="{x}" y="{ty}" class="axis pc-name{m}" text-anchor="middle">{name}<title>{full}</title></text>"##,
            m = if axis.metric { " pc-metric" } else { "" },
            b = TOP + H,
            sw = if axis.metric { 2.5 } else { 1.0 },
            ty = TOP - 26.0,
            name = esc(&truncate(&axis.name, 20)),
            full = esc(&axis.name),
        );
        if lo.is_finite() {
            let _ = write!(
                s,
                r#"<text x="{x}" y="{yt}" class="axis pc-max" text-anchor="middle">{hi}</text><text x="{x}" y="{yb}" class="axis pc-min" text-anchor="middle">{lo}</text>"#,
                yt = TOP - 8.0,
                yb = TOP + H + 16.0,
                hi = format_number(hi),
                lo = format_number(lo),
            );
        }
    }
    for line in lines {
        // A value missing on an axis breaks the line there: one polyline per run of consecutive values, a dot
        // for a value with no neighbour, so no segment claims a value the run does not have.
        let mut segment: Vec<(f64, f64)> = Vec::new();
        for (k, &(lo, hi)) in ranges.iter().enumerate() {
            match line.values.get(k).filter(|v| v.is_finite()) {
                Some(&v) => segment.push((x_of(k), TOP + H - unit(v, lo, hi) * H)),
                None => pc_segment(&mut s, line, &std::mem::take(&mut segment)),
            }
        }
        pc_segment(&mut s, line, &segment);
    }
    s.push_str("</svg>");
    s
}

/// One unbroken piece of a run's parallel-coordinates line: a polyline, or a dot for a single point.
fn pc_segment(s: &mut String, line: &PcLine, points: &[(f64, f64)]) {
    let (id, c, label) = (esc(&line.id), line.colour, esc(&line.label));
    match points {
        [] => {}
        [(x, y)] => {
            let _ = write!(
                s,
                r#"<circle class="pc-line pc-dot" data-run="{id}" cx="{x:.2}" cy="{y:.2}" r="4" fill="{c}" stroke="{c}"><title>{label}</title></circle>"#
            );
        }
        _ => {
            let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
            let _ = write!(
                s,
                r#"<polyline class="pc-line" data-run="{id}" points="{pts}" fill="none" stroke="{c}" stroke-width="2.5" stroke-opacity="0.85"><title>{label}</title></polyline>"#,
                pts = pts.join(" "),
            );
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Markdown → HTML with raw HTML shown as text and only safe link targets (http, https, mailto, relative).
pub fn markdown(text: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(text, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Image { link_type, dest_url: safe_url(dest_url), title, id })
        }
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s).filter(|s| !s.contains('/') && !s.contains('#'));
    match scheme {
        None | Some("http") | Some("https") | Some("mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

/// A page of a dataset (CSV or Parquet): header, rows, whether more rows follow, and each column's type
/// (inferred for CSV, from the schema for Parquet).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvPage {
    pub header: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub more: bool,
}

/// Reads rows `[offset, offset + limit)` of CSV `text` (RFC 4180 quoting; the first record is the header).
pub fn csv_page(text: &str, offset: usize, limit: usize) -> CsvPage {
    let mut records = CsvRecords { s: text, pos: 0 };
    let header = records.next().unwrap_or_default();
    let mut rows = Vec::new();
    let mut more = false;
    for (i, rec) in records.enumerate() {
        if i < offset {
            continue;
        }
        if rows.len() == limit {
            more = true;
            break;
        }
        rows.push(rec);
    }
    let types = (0..header.len())
        .map(|c| {
            let vals: Vec<&str> =
                rows.iter().filter_map(|r| r.get(c)).map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
            if !vals.is_empty() && vals.iter().all(|v| v.parse::<f64>().is_ok()) {
                "number".to_owned()
            } else {
                "text".to_owned()
            }
        })
        .collect();
    CsvPage { header, types, rows, more }
}

struct CsvRecords<'a> {
    s: &'a str,
    pos: usize,
}

impl Iterator for CsvRecords<'_> {
    type Item = Vec<String>;

    fn next(&mut self) -> Option<Vec<String>> {
        let bytes = self.s.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = self.s[self.pos..].char_indices().peekable();
        let mut consumed = self.s.len() - self.pos;
        while let Some((i, c)) = chars.next() {
            if quoted {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        field.push('"');
                        chars.next();
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(c);
                }
                continue;
            }
            match c {
                '"' if field.is_empty() => quoted = true,
                ',' => fields.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    consumed = i + 1;
                    break;
                }
                c => field.push(c),
            }
        }
        fields.push(field);
        self.pos += consumed;
        Some(fields)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn markdown_never_passes_raw_html_or_script_urls() {
        let html = markdown("# T\n\n<script>alert(1)</script>\n\nhi <b onmouseover=x>b</b> [a](javascript:alert(1)) [ok](https://x.y/a)");
        assert!(!html.contains("<script") && !html.contains("<b "), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains(r#"href="https://x.y/a""#) && html.contains("<h1>T</h1>"), "{html}");
    }

    #[test]
    fn classification_metrics_render() {
        let md = json!({
            "confusionMatrix": {"annotationSpecs": [{"displayName": "<script>"}, {"displayName": "b"}],
                                "rows": [{"row": [5, 1]}, {"row": [2, 7]}]},
            "confidenceMetrics": [{"confidenceThreshold": 0.5, "recall": 0.8, "falsePositiveRate": 0.1},
                                  {"confidenceThreshold": 0.9, "recall": 0.4, "falsePositiveRate": 0.0}]
        });
        let c = confusion(&md).unwrap();
        assert_eq!(c.rows, vec![vec![5.0, 1.0], vec![2.0, 7.0]]);
        let svg = confusion_svg(&c);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script"));
        assert_eq!(svg.matches("class=\"cm-cell\"").count(), 4);
        assert_eq!(roc_points(&md), vec![(0.0, 0.4), (0.1, 0.8)]);
        let roc = roc_svg(&[("m".into(), roc_points(&md))]);
        assert!(roc.contains("M40.00,340.00 L40.00,220.00 L70.00,100.00 L340.00,40.00"), "{roc}");
        assert!(
            confusion(&json!({"confusionMatrix": {"annotationSpecs": [{"displayName": "a"}], "rows": []}})).is_none()
        );
    }

    #[test]
    fn csv_pages_with_quotes_and_types() {
        let text = "a,b\n1,\"x, \"\"y\"\"\"\n2,z\r\n3,w\n";
        let p = csv_page(text, 0, 2);
        assert_eq!(p.header, ["a", "b"]);
        assert_eq!(p.rows, vec![vec!["1", "x, \"y\""], vec!["2", "z"]]);
        assert!(p.more);
        assert_eq!(p.types, ["number", "text"]);
        let p = csv_page(text, 2, 2);
        assert_eq!(p.rows, vec![vec!["3", "w"]]);
        assert!(!p.more);
    }

    #[test]
    fn metrics_table_sorted_and_formatted() {
        let m = scalar_metrics(&json!({"b": 0.5, "a": 3, "display_name": "x", "nested": {}}));
        assert_eq!(m, vec![("a".to_owned(), "3".to_owned()), ("b".to_owned(), "0.5".to_owned())]);
    }

    #[test]
    fn parallel_coordinates_scale_each_axis_to_its_range() {
        let axes =
            vec![PcAxis { name: "lr".into(), metric: false }, PcAxis { name: "<b>acc</b>".into(), metric: true }];
        let lines = vec![
            PcLine { id: "r1".into(), label: "one".into(), colour: colour(0), values: vec![0.1, 0.5] },
            PcLine { id: "r2".into(), label: "<i>two</i>".into(), colour: colour(1), values: vec![0.3, 0.9] },
            PcLine { id: "r3".into(), label: "three".into(), colour: colour(2), values: vec![0.2, f64::NAN] },
        ];
        let svg = parallel_svg(&axes, &lines);
        // Top of an axis is y=44, bottom y=264; axis k at x=70+150k.
        assert!(svg.contains(r#"points="70.00,264.00 220.00,264.00""#), "{svg}");
        assert!(svg.contains(r#"points="70.00,44.00 220.00,44.00""#), "{svg}");
        assert!(svg.contains(r#"<circle class="pc-line pc-dot" data-run="r3" cx="70.00" cy="154.00""#), "{svg}");
        assert!(
            svg.contains("&lt;b&gt;acc&lt;/b&gt;") && svg.contains("&lt;i&gt;two&lt;/i&gt;") && !svg.contains("<b>")
        );
        assert_eq!(svg.matches("class=\"pc-line\"").count(), 2);
        assert_eq!(svg.matches("class=\"pc-line pc-dot\"").count(), 1);
        assert_eq!(unit(3.0, 3.0, 3.0), 0.5);
    }

    #[test]
    fn parallel_coordinates_break_a_line_where_a_value_is_missing() {
        let axes: Vec<PcAxis> =
            ["a", "b", "c", "d", "e"].iter().map(|n| PcAxis { name: (*n).into(), metric: *n == "e" }).collect();
        let line = |id: &str, values: Vec<f64>| PcLine { id: id.into(), label: id.into(), colour: colour(0), values };
        let n = f64::NAN;
        let lines = vec![
            line("full", vec![0.0, 0.0, 0.0, 0.0, 0.0]),
            line("top", vec![1.0, 1.0, 1.0, 1.0, 1.0]),
            // Missing on `c`: two pieces, a–b and d–e, and nothing from b to d.
            line("gap", vec![1.0, 0.0, n, 0.0, 1.0]),
            // Missing on `b` and `d`: dots on a, c and e, no line at all.
            line("dots", vec![0.0, n, 1.0, n, 0.0]),
            // Missing on the last axes (fewer values than axes): one piece over the first two.
            line("short", vec![1.0, 0.0]),
        ];
        let svg = parallel_svg(&axes, &lines);
        let of = |id: &str| -> Vec<String> {
            svg.split("<polyline ")
                .skip(1)
                .filter(|p| p.starts_with(&format!("class=\"pc-line\" data-run=\"{id}\"")))
                .map(|p| p.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or("").to_owned())
                .collect()
        };
        // Axis k at x=70+150k; top y=44, bottom y=264.
        assert_eq!(of("full"), ["70.00,264.00 220.00,264.00 370.00,264.00 520.00,264.00 670.00,264.00"]);
        assert_eq!(of("gap"), ["70.00,44.00 220.00,264.00", "520.00,264.00 670.00,44.00"]);
        assert!(of("dots").is_empty(), "{svg}");
        assert_eq!(svg.matches(r#"class="pc-line pc-dot" data-run="dots""#).count(), 3, "{svg}");
        for (cx, cy) in [("70.00", "264.00"), ("370.00", "44.00"), ("670.00", "264.00")] {
            assert!(svg.contains(&format!(r#"data-run="dots" cx="{cx}" cy="{cy}""#)), "{svg}");
        }
        assert_eq!(of("short"), ["70.00,44.00 220.00,264.00"]);
        assert!(!svg.contains(r#"pc-dot" data-run="gap""#) && !svg.contains(r#"pc-dot" data-run="short""#));
    }
}
