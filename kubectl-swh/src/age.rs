//! AGE as kubectl prints it: a port of apimachinery's `duration.HumanDuration`
//! (k8s.io/apimachinery/pkg/util/duration), with its upstream test tables.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// `HumanDuration` for a signed duration in nanoseconds (Go's `time.Duration`).
///
/// Up to 2 s (excluded) in the future is "almost now" (`0s`); further ahead is `<invalid>`.
pub fn human_duration(nanos: i128) -> String {
    // Go: int(d.Seconds()) truncates towards zero, as Rust's integer division does.
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// Time elapsed from `t` to `now`, as kubectl prints it; `<unknown>` without a time
/// (kubectl's `translateTimestampSince`).
pub fn since(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.duration_since(t.0).as_nanos()),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;
    const S: i128 = 1_000 * MS;
    const MIN: i128 = 60 * S;
    const H: i128 = 60 * MIN;

    /// Upstream `TestHumanDuration`.
    #[test]
    fn human_duration_upstream_table() {
        let tests: &[(i128, &str)] = &[
            (S, "1s"),
            (70 * S, "70s"),
            (190 * S, "3m10s"),
            (70 * MIN, "70m"),
            (47 * H, "47h"),
            (49 * H, "2d1h"),
            ((8 * 24 + 2) * H, "8d"),
            ((367 * 24) * H, "367d"),
            ((365 * 2 * 24 + 25) * H, "2y1d"),
            ((365 * 8 * 24 + 2) * H, "8y"),
        ];
        for (d, want) in tests {
            assert_eq!(human_duration(*d), *want, "HumanDuration({d}ns)");
        }
    }

    /// Upstream `TestHumanDurationBoundaries`.
    #[test]
    fn human_duration_upstream_boundaries() {
        let tests: &[(i128, &str)] = &[
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (0, "0s"),
            (S - MS, "0s"),
            (2 * MIN - MS, "119s"),
            (2 * MIN, "2m"),
            (2 * MIN + S, "2m1s"),
            (10 * MIN - MS, "9m59s"),
            (10 * MIN, "10m"),
            (10 * MIN + S, "10m"),
            (3 * H - MS, "179m"),
            (3 * H, "3h"),
            (3 * H + MIN, "3h1m"),
            (8 * H - MS, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * MIN, "8h"),
            (2 * 24 * H - MS, "47h"),
            (2 * 24 * H, "2d"),
            (2 * 24 * H + H, "2d1h"),
            (8 * 24 * H - MS, "7d23h"),
            (8 * 24 * H, "8d"),
            (8 * 24 * H + 23 * H, "8d"),
            (2 * 365 * 24 * H - MS, "729d"),
            (2 * 365 * 24 * H, "2y"),
            (2 * 365 * 24 * H + 23 * H, "2y"),
            (2 * 365 * 24 * H + 23 * H + 59 * MIN, "2y"),
            (2 * 365 * 24 * H + 24 * H - MS, "2y"),
            (2 * 365 * 24 * H + 24 * H, "2y1d"),
            (3 * 365 * 24 * H, "3y"),
            (4 * 365 * 24 * H, "4y"),
            (5 * 365 * 24 * H, "5y"),
            (6 * 365 * 24 * H, "6y"),
            (7 * 365 * 24 * H, "7y"),
            (8 * 365 * 24 * H - MS, "7y364d"),
            (8 * 365 * 24 * H, "8y"),
            (8 * 365 * 24 * H + 364 * 24 * H, "8y"),
            (9 * 365 * 24 * H, "9y"),
        ];
        for (d, want) in tests {
            assert_eq!(human_duration(*d), *want, "HumanDuration({d}ns)");
        }
    }

    #[test]
    fn since_uses_now_and_handles_missing_times() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().expect("ts");
        let t = Time("2026-01-01T00:00:00Z".parse().expect("ts"));
        assert_eq!(since(Some(&t), now), "10m");
        assert_eq!(since(None, now), "<unknown>");
        let future = Time("2026-01-01T00:10:05Z".parse().expect("ts"));
        assert_eq!(since(Some(&future), now), "<invalid>");
    }
}
