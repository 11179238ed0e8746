//! The API server's health during a run: which failed calls are worth repeating (the server did not
//! answer, or answered that it is overloaded or restarting), how long to wait before the next try, and
//! when to give up (`--kube-unreachable-timeout` after the first failure in a row).
//!
//! A refusal (403), a conflict (409), an invalid object (422) are answers: they are never repeated here.

use std::time::Duration;

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a failed call may succeed when repeated: no answer at all (connection refused or reset, a
/// stream cut off), or 5xx / 429 (the server restarting or throttling).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// What to do after the `failures`-th failure in a row, `down_for` after the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Wait this long, then try again.
    After(Duration),
    /// The API server has been unreachable for longer than the timeout.
    GiveUp,
}

/// The retry decision: exponential backoff from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`], never sleeping past
/// the deadline (the last try is made at the deadline), then [`Retry::GiveUp`].
pub fn decide(failures: u32, down_for: Duration, timeout: Duration) -> Retry {
    if down_for >= timeout {
        return Retry::GiveUp;
    }
    let exp = failures.saturating_sub(1).min(16);
    let pause = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    Retry::After(pause.min(timeout - down_for))
}

/// The reason an attempt fails with when the API server stays away.
pub fn unreachable_reason(url: &str, timeout: Duration, last: &str) -> String {
    format!(
        "the Kubernetes API server at {url} was unreachable for {}s (--kube-unreachable-timeout): {last}",
        timeout.as_secs()
    )
}

/// A Pod's pending deadline that does not run while the API server is away: time spent unreachable is
/// added to the deadline when it answers again, so a Pod that was pending when an outage began gets the
/// rest of its `--pod-pending-timeout` afterwards instead of failing the moment the server is back (the
/// watch could not have seen it start meanwhile).
#[derive(Debug, Clone, Copy)]
pub struct PendingClock<I> {
    deadline: I,
    paused_at: Option<I>,
}

impl<I> PendingClock<I>
where
    I: Copy + Ord + std::ops::Add<Duration, Output = I> + std::ops::Sub<I, Output = Duration>,
{
    pub fn new(start: I, timeout: Duration) -> Self {
        PendingClock { deadline: start + timeout, paused_at: None }
    }

    /// Follows the API server's state at `now`: `down` starts a pause, the first look after it ends one.
    pub fn observe(&mut self, down: bool, now: I) {
        match (down, self.paused_at) {
            (true, None) => self.paused_at = Some(now),
            (false, Some(since)) => {
                self.deadline = self.deadline + (now - since);
                self.paused_at = None;
            }
            _ => {}
        }
    }

    /// When a Pod still pending fails (while paused: the deadline as it will be if the server answered now).
    pub fn deadline(&self) -> I {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_deadline_stands_still_while_the_api_server_is_away() {
        let t0 = std::time::Instant::now();
        let s = Duration::from_secs;
        let mut clock = PendingClock::new(t0, s(300));
        assert_eq!(clock.deadline(), t0 + s(300));
        clock.observe(false, t0 + s(10));
        assert_eq!(clock.deadline(), t0 + s(300));
        // Away from 100 s to 500 s: the 400 s are added when it answers again, once.
        clock.observe(true, t0 + s(100));
        clock.observe(true, t0 + s(200));
        assert_eq!(clock.deadline(), t0 + s(300));
        clock.observe(false, t0 + s(500));
        assert_eq!(clock.deadline(), t0 + s(700));
        clock.observe(false, t0 + s(600));
        assert_eq!(clock.deadline(), t0 + s(700));
        // A second outage adds its own length.
        clock.observe(true, t0 + s(650));
        clock.observe(false, t0 + s(660));
        assert_eq!(clock.deadline(), t0 + s(710));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_at_the_deadline() {
        let t = Duration::from_secs(60);
        let zero = Duration::ZERO;
        assert_eq!(decide(1, zero, t), Retry::After(Duration::from_millis(250)));
        assert_eq!(decide(2, zero, t), Retry::After(Duration::from_millis(500)));
        assert_eq!(decide(3, zero, t), Retry::After(Duration::from_secs(1)));
        assert_eq!(decide(10, zero, t), Retry::After(MAX_BACKOFF));
        assert_eq!(decide(u32::MAX, zero, t), Retry::After(MAX_BACKOFF));
        // Never sleeps past the deadline; at the deadline, gives up.
        assert_eq!(decide(10, Duration::from_secs(59), t), Retry::After(Duration::from_secs(1)));
        assert_eq!(decide(1, t, t), Retry::GiveUp);
        assert_eq!(decide(1, Duration::from_secs(61), t), Retry::GiveUp);
    }

    #[test]
    fn answers_are_not_retried() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(
                serde_json::from_value(
                    serde_json::json!({"code": code, "message": "m", "reason": "r", "status": "Failure"}),
                )
                .unwrap(),
            ))
        };
        assert!(is_transient(&status(503)) && is_transient(&status(500)) && is_transient(&status(429)));
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_transient(&status(code)), "{code}");
        }
        let io = kube::Error::ReadEvents(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(is_transient(&io));
        assert!(!is_transient(&kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err())));
    }
}
