//! Live progress of a run on the terminal: an indicatif bar over executable tasks plus one line per
//! finished task (printed plainly when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use secondrow_engine::Progress;
use secondrow_store::TaskState;

use crate::term::{Safe, SafeText};

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
                bar.set_message(Safe(&path).to_string());
                if verbose {
                    line(format!("  started   {} (attempt {attempt})", Safe(&path)));
                }
            }
            Progress::Retrying { path, attempt, delay_ms, error } => {
                line(format!(
                    "  retry     {}: attempt {attempt} in {:.1}s after: {}",
                    Safe(&path),
                    delay_ms as f64 / 1000.0,
                    SafeText(&error)
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
                let mut text = format!("  {mark:<9} {} ({:.2}s)", Safe(&path), duration_ms as f64 / 1000.0);
                if let (Some(e), TaskState::Failed) = (&error, state) {
                    text.push_str(&format!(": {}", SafeText(e)));
                }
                line(text);
            }
            Progress::Log(l) => {
                let stream = if l.stderr { "err" } else { "out" };
                line(format!("    [{}:{stream}] {}", Safe(&l.task_path), Safe(&l.line)));
            }
        }
    }
    bar.finish_and_clear();
}
