//! Test support: a temp dir per test, small generated datasets, and a `component` runner.

use std::path::{Path, PathBuf};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn json(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Files in the dir (sorted), to check that failed steps leave nothing behind.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }
}

/// Runs `secondrow component NAME args...`, with `@name` in an argument replaced by a path in `dir`.
pub fn component(dir: &Dir, name: &str, args: &[&str]) -> Result<(), secondrow_ml::Error> {
    let mut argv = vec![name.to_string()];
    for a in args {
        argv.push(match a.strip_prefix('@') {
            Some(file) => dir.path(file).to_string_lossy().to_string(),
            None => a.to_string(),
        });
    }
    secondrow_ml::run_component(&argv)
}

/// A small mixed-type classification table like the benchmark's adult data: numeric and categorical
/// features with a few empty cells, and a 0/1 label that depends on both.
pub fn adult_csv(n: usize) -> String {
    let jobs = ["tech", "sales", "craft", "admin"];
    let mut text = String::from("age,hours,job,label\n");
    let mut state: u64 = 42;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for i in 0..n {
        let age = 20.0 + (next() * 50.0).floor();
        let hours = 20.0 + (next() * 40.0).floor();
        let job = jobs[(next() * 4.0) as usize % 4];
        let score = (age - 45.0) / 10.0 + (hours - 40.0) / 8.0 + if job == "tech" { 1.5 } else { 0.0 } + next() - 0.5;
        let label = if score > 0.5 { 1 } else { 0 };
        let age_cell = if i % 37 == 5 { String::new() } else { age.to_string() };
        let job_cell = if i % 41 == 7 { "" } else { job };
        text.push_str(&format!("{age_cell},{hours},{job_cell},{label}\n"));
    }
    text
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
