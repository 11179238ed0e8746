//! Retry policy arithmetic (docs/kfp-contract.md §3.6): delay before retry n = backoff × factor^(n-1),
//! capped.

use std::time::Duration;

use secondrow_spec::ir::RetryPolicy;

/// Total attempts allowed (the first plus `maxRetryCount` retries).
pub fn max_attempts(policy: Option<&RetryPolicy>) -> i64 {
    1 + policy.map(|p| p.max_retry_count.max(0)).unwrap_or(0)
}

/// Delay before retry number `retry` (1-based).
pub fn backoff(policy: &RetryPolicy, retry: i64) -> Duration {
    let base = policy.backoff_duration.as_deref().and_then(parse_duration).unwrap_or(0.0);
    let factor = policy.backoff_factor.unwrap_or(2.0);
    let cap = policy.backoff_max_duration.as_deref().and_then(parse_duration).unwrap_or(3600.0);
    let secs = (base * factor.powi((retry - 1).clamp(0, 60) as i32)).min(cap);
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else {
        Duration::ZERO
    }
}

/// Parses protobuf-style durations: `0s`, `1.5s`, and also `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_retry_count: 3,
            backoff_duration: Some("1s".into()),
            backoff_factor: Some(2.0),
            backoff_max_duration: Some("3s".into()),
        };
        assert_eq!(max_attempts(Some(&p)), 4);
        assert_eq!(backoff(&p, 1), Duration::from_secs(1));
        assert_eq!(backoff(&p, 2), Duration::from_secs(2));
        assert_eq!(backoff(&p, 3), Duration::from_secs(3));
        assert_eq!(backoff(&RetryPolicy { backoff_duration: Some("0s".into()), ..p }, 2), Duration::ZERO);
        assert_eq!(max_attempts(None), 1);
        assert_eq!(parse_duration("500ms"), Some(0.5));
    }
}
