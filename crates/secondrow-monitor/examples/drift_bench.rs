//! Times drift over a window: `drift_bench REFERENCE.csv CURRENT.csv [BINS] [REPEATS]` (CSV files with a
//! header; a column whose every cell parses as a number is numeric, any other is categorical). Prints one
//! JSON object: the best and median time of `drift::drift` over the whole current table, of the same
//! window's timeline in 10 time spans (`timeline::timeline`, what the UI's monitoring page asks for), and
//! each feature's figures (for comparison with scipy and Evidently in bench/monitoring).

use std::time::Instant;

use secondrow_monitor::drift::{self, Reference};
use secondrow_monitor::log::{Column, Values, Window};
use secondrow_monitor::performance::Labels;
use secondrow_monitor::timeline;

fn read_csv(path: &str) -> Vec<Column> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut cells: Vec<Vec<&str>> = vec![Vec::new(); header.len()];
    for line in lines.filter(|l| !l.is_empty()) {
        for (j, cell) in line.split(',').enumerate().take(header.len()) {
            cells[j].push(cell);
        }
    }
    header
        .iter()
        .zip(cells)
        .map(|(name, column)| {
            let numbers: Option<Vec<Option<f64>>> =
                column.iter().map(|c| if c.is_empty() { Some(None) } else { c.parse().ok().map(Some) }).collect();
            let values = match numbers {
                Some(v) => Values::Number(v),
                None => Values::Text(column.iter().map(|c| (!c.is_empty()).then(|| (*c).to_owned())).collect()),
            };
            Column { name: (*name).to_owned(), values }
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: drift_bench REFERENCE.csv CURRENT.csv [BINS] [REPEATS]");
        std::process::exit(2);
    }
    let bins: usize = args.get(3).and_then(|b| b.parse().ok()).unwrap_or(drift::DEFAULT_BINS);
    let repeats: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(10);
    let reference_columns = read_csv(&args[1]);
    let current = read_csv(&args[2]);
    let rows = current.first().map_or(0, |c| c.values.len());
    let started = Instant::now();
    let reference = Reference::from_columns(&reference_columns);
    let reference_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut times = Vec::new();
    let mut report = Vec::new();
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        report = drift::drift(&reference, &current, bins);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    // The same rows as a logged window, one per millisecond, split into 10 spans.
    let window = Window {
        request_ids: (0..rows).map(|i| format!("r{i}")).collect(),
        time_ms: (0..rows as i64).collect(),
        rows: vec![0; rows],
        features: current.clone(),
        prediction: None,
    };
    let mut spans = Vec::new();
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let series = timeline::timeline(Some(&reference), &window, &Labels::new(), 10, bins);
        spans.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(series.iter().map(|b| b.rows).sum::<usize>(), rows);
    }
    spans.sort_by(f64::total_cmp);
    let doc = serde_json::json!({
        "rows": rows,
        "features": report.len(),
        "bins": bins,
        "reference_ms": reference_ms,
        "drift_ms_best": times[0],
        "drift_ms_median": times[times.len() / 2],
        "timeline_10_ms_best": spans[0],
        "timeline_10_ms_median": spans[spans.len() / 2],
        "drift": report,
    });
    println!("{doc}");
}
