//! Integration tests of the `secondrow` binary: real processes, the real kfp SDK, a real SQLite file.

// Tests start servers, interpreters and the binary itself as child processes.
#![allow(clippy::disallowed_methods)]

mod api;
mod auth;
mod bad_input;
mod data;
mod deploy;
mod durability;
mod extras;
mod hostile;
mod hygiene;
mod jobs;
mod kfp_artifacts;
mod kfp_compat;
mod kfp_kubernetes;
mod kfp_target;
mod kube;
mod kube_s3;
mod kube_serve;
mod kube_support;
mod monitor;
mod notebooks;
mod registry;
mod remote;
mod s3;
mod s3_serve;
mod samples;
mod sandbox;
mod sec_more;
mod signals;
mod support;
mod tune;
mod ui;
mod ui_manage;
mod warm;
