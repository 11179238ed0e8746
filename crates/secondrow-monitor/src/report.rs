//! The drift report of one deployment version, as Markdown and as a standalone HTML page.

use std::fmt::Write as _;

use crate::drift::FeatureDrift;

/// What a report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub deployment: &'a str,
    pub version: &'a str,
    /// Where the training side comes from, in words.
    pub reference: &'a str,
    pub rows: usize,
    pub features: &'a [FeatureDrift],
    pub schema_violation_rate: f64,
    /// PSI above this is flagged as drift.
    pub psi_threshold: f64,
}

fn number(x: Option<f64>) -> String {
    match x {
        Some(x) if x.abs() >= 1e-3 || x == 0.0 => format!("{x:.4}"),
        Some(x) => format!("{x:.2e}"),
        None => "-".to_owned(),
    }
}

fn rows<'a>(r: &'a ReportInput<'a>) -> impl Iterator<Item = [String; 8]> + 'a {
    r.features.iter().map(move |f| {
        [
            f.feature.clone(),
            f.kind.to_owned(),
            number(Some(f.psi)),
            number(f.ks.or(f.chi_square)),
            number(f.ks_p_value.or(f.chi_square_p_value)),
            number(Some(f.missing_rate)),
            number(Some(f.reference_missing_rate)),
            if f.psi > r.psi_threshold { "drift".to_owned() } else { "ok".to_owned() },
        ]
    })
}

const HEADER: [&str; 8] =
    ["feature", "type", "PSI", "KS / chi-square", "p-value", "missing (window)", "missing (training)", "status"];

/// The report as Markdown.
pub fn markdown(r: &ReportInput) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Drift report: {} version {}\n", md(r.deployment), md(r.version));
    let _ = writeln!(out, "- Window: {} logged rows", r.rows);
    let _ = writeln!(out, "- Reference: {}", md(r.reference));
    let _ = writeln!(out, "- Schema violation rate: {}", number(Some(r.schema_violation_rate)));
    let drifted = r.features.iter().filter(|f| f.psi > r.psi_threshold).count();
    let _ = writeln!(out, "- Drifted features (PSI > {}): {drifted} of {}\n", r.psi_threshold, r.features.len());
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for row in rows(r) {
        let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// The report as a standalone HTML page (every value escaped).
pub fn html(r: &ReportInput) -> String {
    let mut out = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Drift report</title>\n");
    out.push_str(
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}\
         .drift{color:#b00;font-weight:bold}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>Drift report: {} version {}</h1>", esc(r.deployment), esc(r.version));
    let _ = writeln!(
        out,
        "<p>Window: {} logged rows. Reference: {}. Schema violation rate: {}.</p>",
        r.rows,
        esc(r.reference),
        number(Some(r.schema_violation_rate))
    );
    out.push_str("<table><tr>");
    for h in HEADER {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in rows(r) {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let class = if i == 7 && c == "drift" { " class=\"drift\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_flag_drift_and_escape_names() {
        let features = [FeatureDrift {
            feature: "<b>x|y".into(),
            kind: "number",
            count: 10,
            psi: 0.5,
            ks: Some(0.3),
            ks_p_value: Some(0.01),
            chi_square: None,
            chi_square_p_value: None,
            missing_rate: 0.0,
            reference_missing_rate: 0.1,
        }];
        let input = ReportInput {
            deployment: "churn",
            version: "1",
            reference: "training data",
            rows: 10,
            features: &features,
            schema_violation_rate: 0.0,
            psi_threshold: 0.2,
        };
        let md = markdown(&input);
        assert!(md.contains("| <b>x\\|y | number | 0.5000 | 0.3000 | 0.0100 |"), "{md}");
        assert!(md.contains("Drifted features (PSI > 0.2): 1 of 1"), "{md}");
        let page = html(&input);
        assert!(page.contains("&lt;b&gt;x|y") && !page.contains("<b>x"), "{page}");
        assert!(page.contains("<td class=\"drift\">drift</td>"), "{page}");
    }
}
