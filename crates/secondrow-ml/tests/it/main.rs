//! Integration tests: components run end to end through `run_component`, as the `secondrow` binary
//! runs them, on small generated data in a temp dir per test.

// Tests start servers, interpreters and the binary itself as child processes.
#![allow(clippy::disallowed_methods)]

mod components;
mod kfp;
mod support;
