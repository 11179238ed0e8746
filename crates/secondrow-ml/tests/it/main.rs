//! Integration tests: components run end to end through `run_component`, as the `secondrow` binary
//! runs them, on small generated data in a temp dir per test.

mod components;
mod kfp;
mod support;
