//! Live progress of a run on the terminal: an indicatif bar over executable tasks plus one line per
//! finished task (printed plainly when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use secondrow_engine::Progress;
use secondrow_store::TaskState;

pub async fn render(mut rx: mpsc::UnboundedReceiver<Progress>, verbose: bool) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let line = |text: String| {
        if bar.is_hidden() {
            eprintln!("{text}");
        } else {
            bar.println(text);
        }
    };
    while let Some(p) = rx.recv().await {
        match p {
            Progress::Planned { count } => bar.inc_length(count as u64),
            Progress::Started { path, attempt, .. } => {
                bar.set_message(path.clone());
                if verbose {
                    line(format!("  started   {path} (attempt {attempt})"));
                }
            }
            Progress::Retrying { path, attempt, delay_ms, error } => {
                line(format!(
                    "  retry     {path}: attempt {attempt} in {:.1}s after: {error}",
                    delay_ms as f64 / 1000.0
                ));
            }
            Progress::Finished { path, state, duration_ms, error, .. } => {
                bar.inc(1);
                let mark = match state {
                    TaskState::Succeeded => "ok",
                    TaskState::Cached => "cached",
                    TaskState::Skipped => "skipped",
                    TaskState::Failed => "FAILED",
                    TaskState::Canceled => "canceled",
                    _ => "?",
                };
                let mut text = format!("  {mark:<9} {path} ({:.2}s)", duration_ms as f64 / 1000.0);
                if let (Some(e), TaskState::Failed) = (&error, state) {
                    text.push_str(&format!(": {e}"));
                }
                line(text);
            }
            Progress::Log(l) => {
                let stream = if l.stderr { "err" } else { "out" };
                line(format!("    [{}:{stream}] {}", l.task_path, l.line));
            }
        }
    }
    bar.finish_and_clear();
}
