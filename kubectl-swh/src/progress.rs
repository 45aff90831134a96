//! A status line redrawn in place while a command waits (`migrate --apply`), on a terminal
//! only. Off a terminal nothing is drawn and the notes are written exactly as `Out::note` writes
//! them, so piped and logged output stays line by line and unchanged.

use std::ffi::OsStr;
use std::io::Write;
use std::time::Duration;

/// Erases the terminal line the cursor is on and returns to its start.
const CLEAR: &str = "\r\x1b[2K";

/// Whether to draw a status line: stderr is a terminal, and not a `TERM=dumb` one (which does
/// not understand the erase sequence).
pub fn enabled(stderr_is_tty: bool, term: Option<&OsStr>) -> bool {
    stderr_is_tty && term.is_none_or(|t| t != "dumb")
}

/// The terminal's width from `$COLUMNS` (shells set it), else 80.
pub fn width(columns: Option<&OsStr>) -> usize {
    columns
        .and_then(OsStr::to_str)
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

/// `1m08s`, `45s`: whole seconds, rounded up (a wait with 0.4 s left still shows `1s`).
pub fn seconds_left(left: Duration) -> String {
    let s = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// What `migrate --apply` waits for: how many of the endpoints ready in the Service's own
/// EndpointSlices the agents' slices carry (`None`: not known, e.g. slices not readable), and
/// the time left before the rollback.
pub fn handover_line(service: &str, carried: Option<(usize, usize)>, left: Duration) -> String {
    let endpoints = match carried {
        Some((have, need)) => format!("{have}/{need} endpoints carried by agent EndpointSlices"),
        None => "endpoints carried by agent EndpointSlices: unknown".to_string(),
    };
    format!(
        "  waiting for service/{service}: {endpoints}, rollback in {}",
        seconds_left(left)
    )
}

/// One status line at the bottom of `out`, redrawn in place; notes go above it. Disabled, it
/// draws nothing and a note is just `line\n`. Dropping it erases the line.
pub struct StatusLine<W: Write> {
    out: W,
    enabled: bool,
    width: usize,
    /// What is drawn now (empty: nothing).
    shown: String,
}

impl<W: Write> StatusLine<W> {
    pub fn new(out: W, enabled: bool, width: usize) -> Self {
        StatusLine {
            out,
            enabled,
            width,
            shown: String::new(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces the status line with `line`, cut to the terminal's width (a wrapped line could
    /// not be redrawn in place). Nothing when disabled or unchanged.
    pub fn show(&mut self, line: &str) {
        if !self.enabled {
            return;
        }
        let line: String = line.chars().take(self.width.saturating_sub(1)).collect();
        if line == self.shown {
            return;
        }
        let _ = write!(self.out, "{CLEAR}{line}").and_then(|_| self.out.flush());
        self.shown = line;
    }

    /// A permanent line: above the status line (which is drawn again below it) on a terminal,
    /// else exactly `line\n`.
    pub fn note(&mut self, line: &str) {
        if self.shown.is_empty() {
            let _ = writeln!(self.out, "{line}").and_then(|_| self.out.flush());
            return;
        }
        let _ = write!(self.out, "{CLEAR}{line}\n{}", self.shown).and_then(|_| self.out.flush());
    }

    /// Erases the status line (before the command's next output).
    pub fn clear(&mut self) {
        if !self.shown.is_empty() {
            let _ = write!(self.out, "{CLEAR}").and_then(|_| self.out.flush());
            self.shown.clear();
        }
    }
}

impl<W: Write> Drop for StatusLine<W> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_on_a_terminal_that_can_erase() {
        assert!(enabled(true, Some(OsStr::new("xterm-256color"))));
        assert!(enabled(true, None));
        assert!(!enabled(true, Some(OsStr::new("dumb"))));
        assert!(!enabled(false, Some(OsStr::new("xterm"))));
        assert!(!enabled(false, None));
    }

    #[test]
    fn width_from_columns() {
        assert_eq!(width(Some(OsStr::new("120"))), 120);
        assert_eq!(width(Some(OsStr::new(" 40\n"))), 40);
        assert_eq!(width(Some(OsStr::new("wide"))), 80);
        assert_eq!(width(Some(OsStr::new("0"))), 80);
        assert_eq!(width(None), 80);
    }

    #[test]
    fn time_left_rounds_up_to_whole_seconds() {
        assert_eq!(seconds_left(Duration::from_secs(120)), "2m00s");
        assert_eq!(seconds_left(Duration::from_millis(107_200)), "1m48s");
        assert_eq!(seconds_left(Duration::from_secs(68)), "1m08s");
        assert_eq!(seconds_left(Duration::from_millis(59_001)), "1m00s");
        assert_eq!(seconds_left(Duration::from_secs(45)), "45s");
        assert_eq!(seconds_left(Duration::from_millis(400)), "1s");
        assert_eq!(seconds_left(Duration::ZERO), "0s");
    }

    #[test]
    fn the_handover_line_says_what_and_how_long() {
        assert_eq!(
            handover_line("shop", Some((1, 3)), Duration::from_millis(107_200)),
            "  waiting for service/shop: 1/3 endpoints carried by agent EndpointSlices, rollback in 1m48s"
        );
        assert_eq!(
            handover_line("shop", Some((0, 0)), Duration::from_secs(5)),
            "  waiting for service/shop: 0/0 endpoints carried by agent EndpointSlices, rollback in 5s"
        );
        assert_eq!(
            handover_line("db", None, Duration::from_secs(90)),
            "  waiting for service/db: endpoints carried by agent EndpointSlices: unknown, rollback in 1m30s"
        );
    }

    fn written(
        enabled: bool,
        width: usize,
        f: impl FnOnce(&mut StatusLine<&mut Vec<u8>>),
    ) -> String {
        let mut buf = Vec::new();
        {
            let mut s = StatusLine::new(&mut buf, enabled, width);
            f(&mut s);
        }
        String::from_utf8(buf).expect("UTF-8")
    }

    #[test]
    fn off_a_terminal_only_the_notes_line_by_line() {
        let out = written(false, 80, |s| {
            s.show("  waiting 0/3");
            s.note("  Adopted=False WaitingForAgentEndpoints");
            s.show("  waiting 1/3");
            s.show("  waiting 3/3");
            s.note("  Adopted=True HandedOver");
            s.clear();
        });
        assert_eq!(
            out,
            "  Adopted=False WaitingForAgentEndpoints\n  Adopted=True HandedOver\n"
        );
    }

    #[test]
    fn on_a_terminal_one_line_redrawn_in_place_notes_above_it() {
        let out = written(true, 80, |s| {
            s.show("  waiting 0/3");
            s.show("  waiting 0/3"); // unchanged: not written again
            s.note("  Adopted=False");
            s.show("  waiting 2/3");
        });
        assert_eq!(
            out,
            "\r\x1b[2K  waiting 0/3\r\x1b[2K  Adopted=False\n  waiting 0/3\r\x1b[2K  waiting 2/3\r\x1b[2K",
            "the last erase is the drop's"
        );
        // A note before anything is shown is a plain line.
        assert_eq!(written(true, 80, |s| s.note("x")), "x\n");
    }

    #[test]
    fn the_line_is_cut_to_the_terminal_width() {
        let out = written(true, 10, |s| s.show("0123456789abc"));
        assert_eq!(out, "\r\x1b[2K012345678\r\x1b[2K");
    }
}
