//! `secondrow serve` and `secondrow server` stop gracefully on SIGTERM and SIGINT: they stop accepting
//! connections, finish what is in flight and exit 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

/// Reads `stream` line by line on a thread; returns the first line containing `needle` (within `timeout`).
fn wait_for_line(stream: impl Read + Send + 'static, needle: &'static str, timeout: Duration) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(timeout).unwrap_or_else(|e| panic!("no line with `{needle}` within {timeout:?}: {e}"))
}

/// The `http://HOST:PORT` in `line`.
fn address_in(line: &str) -> String {
    let start = line.find("http://").unwrap_or_else(|| panic!("no address in `{line}`")) + "http://".len();
    line[start..].split(|c: char| c.is_whitespace() || c == ')').next().unwrap().to_owned()
}

fn http_status(addr: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status();
    assert!(status.unwrap().success(), "kill -{name} failed");
}

/// Polls the child until it exits; its exit code (None: killed by a signal).
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {timeout:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve_then_signal(name: &str) {
    let h = Home::new();
    let model = trained_model(&h);
    let mut child = h
        .cmd()
        .args(["serve", "--port", "0", "--model"])
        .arg(format!("m={}", model.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_line(child.stderr.take().unwrap(), "serving", Duration::from_secs(60));
    let addr = address_in(&line);
    assert_eq!(http_status(&addr, "/v2/models/m/ready"), 200);
    signal(&child, name);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0), "`secondrow serve` after SIG{name}");
    assert!(TcpStream::connect(&addr).is_err(), "the port is closed after the exit");
}

#[test]
fn serve_exits_0_on_sigterm() {
    serve_then_signal("TERM");
}

#[test]
fn serve_exits_0_on_sigint() {
    serve_then_signal("INT");
}

#[test]
fn server_exits_0_on_sigterm() {
    let h = Home::new();
    let mut child = h
        .cmd()
        .args(["server", "--port", "0", "--serve-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = wait_for_line(child.stdout.take().unwrap(), "listening on", Duration::from_secs(60));
    let addr = address_in(&line);
    assert_eq!(http_status(&addr, "/apis/v2beta1/healthz"), 200);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0), "`secondrow server` after SIGTERM");
}
