//! Per (target, probe) result hysteresis, exactly like kubelet readiness.
//!
//! - The state starts [`ProbeState::Unknown`] (not ready) and stays there until a threshold is met.
//! - `success_threshold` consecutive successes make it [`ProbeState::Passing`];
//!   `failure_threshold` consecutive failures make it [`ProbeState::Failing`].
//! - Otherwise the state is kept: a single failure of a passing probe changes nothing until the
//!   run of failures reaches the threshold (kubelet `resultRun`).
//!
//! Pure and synchronous: the caller supplies the wall-clock time of each result.

use std::fmt;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProbeState {
    /// No verdict yet (counts as not ready).
    #[default]
    Unknown,
    Passing,
    Failing,
}

impl ProbeState {
    /// Lowercase name as shown in status: `unknown`, `passing`, `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeState::Unknown => "unknown",
            ProbeState::Passing => "passing",
            ProbeState::Failing => "failing",
        }
    }

    pub fn is_passing(self) -> bool {
        self == ProbeState::Passing
    }
}

impl fmt::Display for ProbeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change, returned by [`Threshold::record`] when it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: ProbeState,
    pub to: ProbeState,
    /// When the new state began (the time of the deciding result).
    pub since: SystemTime,
    /// The deciding result's message (e.g. the last error when turning failing).
    pub message: String,
}

/// Hysteresis state of one (target, probe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub state: ProbeState,
    /// When `state` began; for `Unknown`, when tracking began.
    pub since: SystemTime,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    /// Message of the most recent failure, kept until a success is recorded after it.
    pub last_error: Option<String>,
    /// Message of the most recent result, success or failure.
    pub last_message: Option<String>,
    pub last_probe_time: Option<SystemTime>,
}

impl Threshold {
    pub fn new(now: SystemTime) -> Self {
        Self {
            state: ProbeState::Unknown,
            since: now,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_error: None,
            last_message: None,
            last_probe_time: None,
        }
    }

    /// Records one result. Thresholds below 1 are treated as 1.
    pub fn record(
        &mut self,
        ok: bool,
        message: &str,
        at: SystemTime,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Option<Transition> {
        self.last_probe_time = Some(at);
        set_text(&mut self.last_message, message);
        let target = if ok {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
            self.last_error = None;
            (self.consecutive_successes >= success_threshold.max(1)).then_some(ProbeState::Passing)
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
            set_text(&mut self.last_error, message);
            (self.consecutive_failures >= failure_threshold.max(1)).then_some(ProbeState::Failing)
        };
        match target {
            Some(to) if to != self.state => {
                let from = self.state;
                self.state = to;
                self.since = at;
                Some(Transition {
                    from,
                    to,
                    since: at,
                    message: message.to_string(),
                })
            }
            _ => None,
        }
    }

    /// Whether a result `ok` agrees with the state: a success of a passing probe or a failure
    /// of a failing one. Any other result (including every result before a verdict) starts or
    /// continues a streak that may change the state: fast transitions probe again sooner then.
    pub fn agrees(&self, ok: bool) -> bool {
        match self.state {
            ProbeState::Passing => ok,
            ProbeState::Failing => !ok,
            ProbeState::Unknown => false,
        }
    }

    /// Forgets all results (e.g. the pod's IP changed): back to `Unknown` as of `now`.
    /// Returns the transition if the state was not already `Unknown`.
    pub fn reset(&mut self, now: SystemTime) -> Option<Transition> {
        let from = self.state;
        *self = Self::new(now);
        (from != ProbeState::Unknown).then(|| Transition {
            from,
            to: ProbeState::Unknown,
            since: now,
            message: "results reset".to_string(),
        })
    }
}

/// Sets `slot` to `text`, reusing its buffer (this runs for every probe result).
fn set_text(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(text);
        }
        None => *slot = Some(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    /// Feeds results (`true` = success) with thresholds (succ, fail); returns the states after each.
    fn run(succ: u32, fail: u32, results: &[bool]) -> Vec<ProbeState> {
        let mut th = Threshold::new(t(0));
        results
            .iter()
            .enumerate()
            .map(|(i, ok)| {
                th.record(
                    *ok,
                    if *ok { "ok" } else { "bad" },
                    t(i as u64 + 1),
                    succ,
                    fail,
                );
                th.state
            })
            .collect()
    }

    use ProbeState::{Failing as F, Passing as P, Unknown as U};

    #[test]
    fn starts_unknown() {
        let th = Threshold::new(t(5));
        assert_eq!(th.state, U);
        assert_eq!(th.since, t(5));
        assert!(!th.state.is_passing());
    }

    #[test]
    fn kubelet_defaults_one_success_three_failures() {
        assert_eq!(run(1, 3, &[true]), vec![P]);
        assert_eq!(
            run(1, 3, &[true, false, false, false, true]),
            vec![P, P, P, F, P]
        );
    }

    #[test]
    fn failures_before_any_success_stay_unknown_until_threshold() {
        assert_eq!(run(1, 3, &[false, false, false]), vec![U, U, F]);
    }

    #[test]
    fn success_threshold_needs_a_consecutive_run() {
        assert_eq!(
            run(3, 1, &[true, true, false, true, true, true]),
            vec![U, U, F, F, F, P]
        );
    }

    #[test]
    fn interrupted_failure_runs_do_not_flip() {
        assert_eq!(
            run(1, 3, &[true, false, false, true, false, false, true]),
            vec![P; 7]
        );
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        assert_eq!(run(0, 0, &[false, true]), vec![F, P]);
    }

    #[test]
    fn transitions_carry_old_new_since_and_message() {
        let mut th = Threshold::new(t(0));
        assert_eq!(th.record(false, "connection refused", t(1), 1, 2), None);
        assert_eq!(th.consecutive_failures, 1);
        assert_eq!(th.last_error.as_deref(), Some("connection refused"));
        let tr = th
            .record(false, "503 Service Unavailable", t(2), 1, 2)
            .unwrap();
        assert_eq!(
            tr,
            Transition {
                from: U,
                to: F,
                since: t(2),
                message: "503 Service Unavailable".into()
            }
        );
        assert_eq!(th.since, t(2));
        // Staying failing: no event, since unchanged, counts keep going.
        assert_eq!(
            th.record(false, "503 Service Unavailable", t(3), 1, 2),
            None
        );
        assert_eq!((th.since, th.consecutive_failures), (t(2), 3));
        let tr = th.record(true, "200 OK", t(4), 1, 2).unwrap();
        assert_eq!((tr.from, tr.to, tr.since), (F, P, t(4)));
        assert_eq!(th.last_error, None);
        assert_eq!(th.last_message.as_deref(), Some("200 OK"));
        assert_eq!(th.last_probe_time, Some(t(4)));
        assert_eq!((th.consecutive_successes, th.consecutive_failures), (1, 0));
    }

    #[test]
    fn messages_reuse_their_buffers() {
        let mut th = Threshold::new(t(0));
        th.record(false, "connection refused", t(1), 1, 3);
        let msg = th.last_message.as_ref().map(|s| s.as_ptr());
        let err = th.last_error.as_ref().map(|s| s.as_ptr());
        th.record(false, "connection reset", t(2), 1, 3);
        assert_eq!(th.last_message.as_ref().map(|s| s.as_ptr()), msg);
        assert_eq!(th.last_error.as_ref().map(|s| s.as_ptr()), err);
        assert_eq!(th.last_message.as_deref(), Some("connection reset"));
        assert_eq!(th.last_error.as_deref(), Some("connection reset"));
    }

    #[test]
    fn reset_goes_back_to_unknown() {
        let mut th = Threshold::new(t(0));
        th.record(true, "ok", t(1), 1, 3);
        let tr = th.reset(t(2)).unwrap();
        assert_eq!((tr.from, tr.to), (P, U));
        assert_eq!(th, Threshold::new(t(2)));
        assert_eq!(th.reset(t(3)), None);
    }

    #[test]
    fn only_results_that_confirm_the_state_agree() {
        let mut th = Threshold::new(t(0));
        assert!(!th.agrees(true) && !th.agrees(false), "no verdict yet");
        th.record(true, "ok", t(1), 1, 3);
        assert!(th.agrees(true) && !th.agrees(false));
        // A failure streak under way: the state (passing) still decides what agrees.
        th.record(false, "x", t(2), 1, 3);
        assert!(th.agrees(true) && !th.agrees(false));
        th.record(false, "x", t(3), 1, 3);
        th.record(false, "x", t(4), 1, 3);
        assert_eq!(th.state, F);
        assert!(th.agrees(false) && !th.agrees(true));
    }

    #[test]
    fn threshold_change_applies_to_the_running_count() {
        let mut th = Threshold::new(t(0));
        th.record(false, "x", t(1), 1, 5);
        th.record(false, "x", t(2), 1, 5);
        // The spec now says 2: the current run of 2 already meets it on the next result.
        th.record(false, "x", t(3), 1, 2);
        assert_eq!(th.state, F);
    }
}
