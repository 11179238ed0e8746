//! Small helpers that render reports as Markdown (for `system.Markdown` artifacts) and HTML (for
//! `system.HTML` artifacts): a [`Report`] is a list of headings, paragraphs and tables rendered both ways,
//! so every report reads the same in the kfp UI and in a terminal.

/// One block of a report.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A labelled bar chart (label, value); rendered as text bars in Markdown and as divs in HTML.
    Bars {
        title: String,
        bars: Vec<(String, f64)>,
    },
}

/// A document made of [`Block`]s.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Report {
    pub fn new(title: &str) -> Report {
        Report { title: title.to_string(), blocks: Vec::new() }
    }

    pub fn heading(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(text.into()));
    }

    pub fn paragraph(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table { header: header.iter().map(|s| s.to_string()).collect(), rows });
    }

    pub fn bars(&mut self, title: impl Into<String>, bars: Vec<(String, f64)>) {
        self.blocks.push(Block::Bars { title: title.into(), bars });
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        for block in &self.blocks {
            match block {
                Block::Heading(text) => out.push_str(&format!("## {text}\n\n")),
                Block::Paragraph(text) => out.push_str(&format!("{text}\n\n")),
                Block::Table { header, rows } => {
                    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
                    out.push_str(&format!("| {} |\n", header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")));
                    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
                    for row in rows {
                        out.push_str(&format!("| {} |\n", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
                    }
                    out.push('\n');
                }
                Block::Bars { title, bars } => {
                    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
                    out.push_str(&format!("{title}\n\n```text\n"));
                    let width = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
                    for (label, value) in bars {
                        let n = if max > 0.0 { (value / max * 40.0).round() as usize } else { 0 };
                        out.push_str(&format!("{label:>width$} | {} {}\n", "#".repeat(n), fmt(*value)));
                    }
                    out.push_str("```\n\n");
                }
            }
        }
        out
    }

    pub fn to_html(&self) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
             body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin-bottom:1em}}\
             td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th{{background:#f0f0f0}}\
             .bar{{background:#4a7fd4;height:12px;display:inline-block}}</style></head><body>\n<h1>{t}</h1>\n",
            t = escape(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(text) => out.push_str(&format!("<h2>{}</h2>\n", escape(text))),
                Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", escape(text))),
                Block::Table { header, rows } => {
                    out.push_str("<table><tr>");
                    for h in header {
                        out.push_str(&format!("<th>{}</th>", escape(h)));
                    }
                    out.push_str("</tr>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for c in row {
                            out.push_str(&format!("<td>{}</td>", escape(c)));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</table>\n");
                }
                Block::Bars { title, bars } => {
                    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
                    out.push_str(&format!("<p>{}</p><table>\n", escape(title)));
                    for (label, value) in bars {
                        let w = if max > 0.0 { value / max * 300.0 } else { 0.0 };
                        out.push_str(&format!(
                            "<tr><td>{}</td><td style=\"text-align:left\"><span class=\"bar\" style=\"width:{w:.0}px\"></span> {}</td></tr>\n",
                            escape(label),
                            fmt(*value)
                        ));
                    }
                    out.push_str("</table>\n");
                }
            }
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Formats a number for a report: integers plainly, others with up to 6 significant decimals.
pub fn fmt(value: f64) -> String {
    if value.is_nan() {
        "".to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value.abs() >= 1e6 || value.abs() < 1e-4 {
        format!("{value:.4e}")
    } else {
        let s = format!("{value:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
