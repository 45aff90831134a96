//! Scheduler tests on paused Tokio time: deterministic, instant to run. The runner is scripted
//! (the scheduler is what is under test here; the probes have their own tests).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use swh_agent::probe::{
    PgCredentials, PostgresSpec, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTarget,
};
use swh_agent::schedule::{ProbeResult, ProbeRunner, Scheduler, SchedulerConfig};
use swh_agent::threshold::ProbeState;
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;

/// Per port: how long a probe takes and the results it returns in turn (the last one repeats).
#[derive(Default)]
struct Script {
    plans: Mutex<HashMap<u16, (Duration, Vec<bool>)>>,
    runs: Mutex<HashMap<u16, usize>>,
    /// (port, start) of every run.
    starts: Mutex<Vec<(u16, Instant)>>,
    released: Mutex<Vec<ProbeTarget>>,
    /// Every spec a run was given.
    specs: Mutex<Vec<Arc<ProbeSpec>>>,
}

impl Script {
    fn plan(&self, port: u16, takes: Duration, results: &[bool]) {
        self.plans
            .lock()
            .unwrap()
            .insert(port, (takes, results.to_vec()));
    }
}

struct Scripted(Arc<Script>);

impl ProbeRunner for Scripted {
    fn run(&self, spec: Arc<ProbeSpec>, target: ProbeTarget) -> BoxFuture<'static, ProbeOutcome> {
        let script = self.0.clone();
        script.specs.lock().unwrap().push(spec);
        Box::pin(async move {
            script
                .starts
                .lock()
                .unwrap()
                .push((target.port, Instant::now()));
            let n = {
                let mut runs = script.runs.lock().unwrap();
                let n = runs.entry(target.port).or_insert(0);
                *n += 1;
                *n - 1
            };
            let (takes, results) = script
                .plans
                .lock()
                .unwrap()
                .get(&target.port)
                .cloned()
                .unwrap_or((Duration::ZERO, vec![true]));
            tokio::time::sleep(takes).await;
            let ok = results.get(n).or(results.last()).copied().unwrap_or(true);
            if ok {
                ProbeOutcome::success("ok", takes)
            } else {
                ProbeOutcome::failure("connection refused", takes)
            }
        })
    }

    fn release(&self, _spec: &ProbeSpec, target: ProbeTarget) {
        self.0.released.lock().unwrap().push(target);
    }
}

fn target(port: u16) -> ProbeTarget {
    ProbeTarget::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port)
}

fn spec(period_s: u64, delay_s: u64) -> ProbeSpec {
    ProbeSpec {
        period: Duration::from_secs(period_s),
        initial_delay: Duration::from_secs(delay_s),
        ..ProbeSpec::new("p", ProbeKind::Tcp)
    }
}

fn start(
    config: SchedulerConfig,
) -> (
    Scheduler<String>,
    Receiver<ProbeResult<String>>,
    Arc<Script>,
) {
    let script = Arc::new(Script::default());
    let (sched, rx) = Scheduler::spawn(Scripted(script.clone()), config);
    (sched, rx, script)
}

fn seeded() -> SchedulerConfig {
    SchedulerConfig {
        seed: Some(42),
        ..Default::default()
    }
}

async fn next(rx: &mut Receiver<ProbeResult<String>>) -> ProbeResult<String> {
    tokio::time::timeout(Duration::from_secs(3600), rx.recv())
        .await
        .expect("no result within an hour of (paused) time")
        .expect("scheduler stopped")
}

#[tokio::test(start_paused = true)]
async fn initial_delay_then_every_period_from_last_start() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    // The probe takes 300 ms: the period counts from the start, not the end.
    script.plan(1, Duration::from_millis(300), &[true]);
    sched.upsert("a".to_string(), target(1), spec(2, 5), t0);
    for expected in [5, 7, 9, 11] {
        let r = next(&mut rx).await;
        assert_eq!(r.key, "a");
        assert_eq!(r.started - t0, Duration::from_secs(expected));
        assert_eq!(r.lag, Duration::ZERO);
        assert!(r.outcome.ok);
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_target_is_probed_at_once_when_it_has_no_delay() {
    let (sched, mut rx, _script) = start(seeded());
    let t0 = Instant::now();
    sched.upsert("a".to_string(), target(1), spec(10, 0), t0);
    let r = next(&mut rx).await;
    assert_eq!(r.started, t0);
    // Initial delay measured from a start in the past: only the remainder is waited.
    let created = Instant::now();
    tokio::time::advance(Duration::from_secs(3)).await;
    sched.upsert("b".to_string(), target(2), spec(10, 5), created);
    let r = next(&mut rx).await;
    assert_eq!(r.key, "b");
    assert_eq!(r.started - created, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn old_targets_are_spread_over_one_period() {
    let (sched, mut rx, _script) = start(seeded());
    let long_ago = Instant::now();
    tokio::time::advance(Duration::from_secs(60)).await;
    let t0 = Instant::now();
    for i in 0..200u16 {
        sched.upsert(format!("t{i}"), target(1000 + i), spec(10, 0), long_ago);
    }
    let mut first: HashMap<String, Instant> = HashMap::new();
    while first.len() < 200 {
        let r = next(&mut rx).await;
        assert!(r.lag < Duration::from_millis(2), "lag {:?}", r.lag);
        first.entry(r.key.clone()).or_insert(r.started);
    }
    let offsets: Vec<Duration> = first.values().map(|s| *s - t0).collect();
    assert!(offsets.iter().all(|o| *o < Duration::from_secs(10)));
    // Spread: every second of the period gets some, none gets most.
    let mut buckets = [0usize; 10];
    for o in &offsets {
        buckets[o.as_secs() as usize] += 1;
    }
    assert!(buckets.iter().all(|b| (5..=50).contains(b)), "{buckets:?}");
    // Second round keeps each phase: start + period, exactly.
    let mut second: HashMap<String, Instant> = HashMap::new();
    while second.len() < 200 {
        let r = next(&mut rx).await;
        if r.started > first[&r.key] {
            second.entry(r.key.clone()).or_insert(r.started);
        }
    }
    for (k, s) in &second {
        assert_eq!(*s - first[k], Duration::from_secs(10), "{k}");
    }
}

#[tokio::test(start_paused = true)]
async fn results_carry_threshold_transitions() {
    let (sched, mut rx, script) = start(seeded());
    // pass, pass, fail, fail, fail, pass
    script.plan(
        1,
        Duration::from_millis(10),
        &[true, true, false, false, false, true],
    );
    let s = ProbeSpec {
        success_threshold: 1,
        failure_threshold: 3,
        ..spec(1, 0)
    };
    sched.upsert("a".to_string(), target(1), s, Instant::now());
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = next(&mut rx).await;
        seen.push((
            r.state.state,
            r.transition.map(|t| (t.from, t.to)),
            r.state.last_error.clone(),
        ));
    }
    use ProbeState::{Failing, Passing, Unknown};
    let refused = Some("connection refused".to_string());
    assert_eq!(
        seen,
        vec![
            (Passing, Some((Unknown, Passing)), None),
            (Passing, None, None),
            (Passing, None, refused.clone()),
            (Passing, None, refused.clone()),
            (Failing, Some((Passing, Failing)), refused),
            (Passing, Some((Failing, Passing)), None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_waiting_shows_as_lag() {
    let (sched, mut rx, script) = start(SchedulerConfig {
        max_concurrency: 2,
        seed: Some(1),
        ..Default::default()
    });
    let t0 = Instant::now();
    for i in 0..5u16 {
        script.plan(i, Duration::from_secs(1), &[true]);
        sched.upsert(format!("t{i}"), target(i), spec(100, 0), t0);
    }
    let mut lags = Vec::new();
    for _ in 0..5 {
        let r = next(&mut rx).await;
        assert_eq!(r.due, t0);
        lags.push(r.lag.as_secs());
    }
    lags.sort();
    assert_eq!(lags, vec![0, 0, 1, 1, 2]);
    // Never more than 2 at once: starts come in pairs a second apart.
    let starts: Vec<u64> = script
        .starts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| (*s - t0).as_secs())
        .collect();
    assert_eq!(starts, vec![0, 0, 1, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_probe_slower_than_its_period_never_overlaps_itself() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    script.plan(1, Duration::from_millis(2500), &[true]);
    sched.upsert("a".to_string(), target(1), spec(1, 0), t0);
    let mut starts = Vec::new();
    for _ in 0..3 {
        let r = next(&mut rx).await;
        starts.push((r.started - t0).as_millis());
    }
    assert_eq!(starts, vec![0, 2500, 5000]);
}

#[tokio::test(start_paused = true)]
async fn removed_targets_stop_and_their_in_flight_result_is_dropped() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    script.plan(1, Duration::from_secs(1), &[true]);
    script.plan(2, Duration::from_millis(10), &[true]);
    sched.upsert("slow".to_string(), target(1), spec(2, 0), t0);
    sched.upsert("other".to_string(), target(2), spec(2, 0), t0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sched.remove("slow".to_string());
    for _ in 0..5 {
        let r = next(&mut rx).await;
        assert_eq!(r.key, "other");
    }
    // Only one run of the removed pair ever started, and its probe was released.
    let slow_runs = script
        .starts
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| *p == 1)
        .count();
    assert_eq!(slow_runs, 1);
    assert_eq!(*script.released.lock().unwrap(), vec![target(1)]);
}

#[tokio::test(start_paused = true)]
async fn updates_apply_while_running() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    script.plan(1, Duration::from_millis(10), &[true]);
    script.plan(2, Duration::from_millis(10), &[false]);
    sched.upsert("a".to_string(), target(1), spec(10, 0), t0);
    let r = next(&mut rx).await;
    assert_eq!(r.started, t0);
    assert_eq!(r.state.state, ProbeState::Passing);

    // New period: next run is last start + new period, state kept.
    sched.upsert("a".to_string(), target(1), spec(3, 0), t0);
    let r = next(&mut rx).await;
    assert_eq!(r.started - t0, Duration::from_secs(3));
    assert_eq!(r.state.consecutive_successes, 2);

    // New target (pod IP/port changed): state starts over from Unknown.
    let s = ProbeSpec {
        failure_threshold: 2,
        ..spec(3, 0)
    };
    sched.upsert("a".to_string(), target(2), s, t0);
    let r = next(&mut rx).await;
    assert_eq!(r.target, target(2));
    assert_eq!(r.state.state, ProbeState::Unknown);
    assert_eq!(r.state.consecutive_failures, 1);
    let r = next(&mut rx).await;
    assert_eq!(r.state.state, ProbeState::Failing);
    assert_eq!(
        r.transition.map(|t| (t.from, t.to)),
        Some((ProbeState::Unknown, ProbeState::Failing))
    );
    assert_eq!(*script.released.lock().unwrap(), vec![target(1)]);
}

#[tokio::test(start_paused = true)]
async fn result_of_a_run_started_before_a_target_change_is_dropped() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    script.plan(1, Duration::from_secs(2), &[true]);
    script.plan(2, Duration::from_millis(10), &[false]);
    sched.upsert("a".to_string(), target(1), spec(5, 0), t0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sched.upsert("a".to_string(), target(2), spec(5, 0), t0);
    let r = next(&mut rx).await;
    assert_eq!(r.target, target(2), "old target's result must not surface");
    assert!(!r.outcome.ok);
}

#[tokio::test(start_paused = true)]
async fn identical_upserts_change_nothing() {
    let (sched, mut rx, _script) = start(seeded());
    let t0 = Instant::now();
    sched.upsert("a".to_string(), target(1), spec(4, 0), t0);
    next(&mut rx).await;
    for _ in 0..10 {
        sched.upsert("a".to_string(), target(1), spec(4, 0), t0);
    }
    let r = next(&mut rx).await;
    assert_eq!(r.started - t0, Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn four_thousand_targets_at_one_second() {
    let (sched, mut rx, _script) = start(SchedulerConfig {
        results_capacity: 8192,
        seed: Some(7),
        ..Default::default()
    });
    let long_ago = Instant::now();
    tokio::time::advance(Duration::from_secs(10)).await;
    let t0 = Instant::now();
    for i in 0..4000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        sched.upsert(
            format!("t{i}"),
            ProbeTarget::new(ip, 80),
            spec(1, 0),
            long_ago,
        );
    }
    // Three seconds of simulated time: every pair runs about three times, never late.
    let mut count = 0;
    let mut max_lag = Duration::ZERO;
    loop {
        let r = next(&mut rx).await;
        if r.started - t0 >= Duration::from_secs(3) {
            break;
        }
        count += 1;
        max_lag = max_lag.max(r.lag);
    }
    assert!((11_900..=12_000).contains(&count), "{count}");
    assert!(max_lag < Duration::from_millis(2), "{max_lag:?}");
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_the_scheduler() {
    let (sched, mut rx, _script) = start(seeded());
    sched.upsert("a".to_string(), target(1), spec(1, 0), Instant::now());
    next(&mut rx).await;
    drop(sched);
    // Drains whatever was in flight, then the channel closes.
    while let Some(_r) = rx.recv().await {}
}

fn pg_spec(password: &str) -> ProbeSpec {
    ProbeSpec {
        period: Duration::from_secs(1),
        ..ProbeSpec::new(
            "db",
            ProbeKind::Postgres(PostgresSpec::new(Ok(PgCredentials {
                user: "probe".into(),
                password: password.into(),
            }))),
        )
    }
}

fn password(spec: &ProbeSpec) -> String {
    match &spec.kind {
        ProbeKind::Postgres(p) => p.credentials.as_ref().unwrap().password.clone(),
        _ => panic!("not a PostgreSQL spec"),
    }
}

#[tokio::test(start_paused = true)]
async fn rotated_credentials_keep_the_state_and_apply_from_the_next_run() {
    let (sched, mut rx, script) = start(seeded());
    let t0 = Instant::now();
    sched.upsert("a".to_string(), target(1), pg_spec("old"), t0);
    let r = next(&mut rx).await;
    assert_eq!(r.state.state, ProbeState::Passing);
    // The Secret is rotated (a new password, and a client certificate appears).
    let mut rotated = pg_spec("new");
    if let ProbeKind::Postgres(p) = &mut rotated.kind {
        p.tls.client_cert_pem = Some("CERT".into());
        p.tls.client_key_pem = Some("KEY".into());
    }
    sched.upsert("a".to_string(), target(1), rotated, t0);
    let r = next(&mut rx).await;
    assert_eq!(r.transition, None, "no reset to Unknown, no transition");
    assert_eq!(r.state.state, ProbeState::Passing);
    assert_eq!(
        r.state.consecutive_successes, 2,
        "the run of successes goes on"
    );
    assert_eq!(password(&r.probe), "new");
    let seen: Vec<String> = script
        .specs
        .lock()
        .unwrap()
        .iter()
        .map(|s| password(s))
        .collect();
    assert_eq!(
        seen,
        ["old", "new"],
        "the next run uses the new credentials"
    );
    assert_eq!(
        *script.released.lock().unwrap(),
        [target(1)],
        "what was built on the old credentials is released"
    );
    // Another kind of change still resets.
    let mut other = pg_spec("new");
    if let ProbeKind::Postgres(p) = &mut other.kind {
        p.db_name = Some("other".into());
    }
    sched.upsert("a".to_string(), target(1), other, t0);
    let r = next(&mut rx).await;
    assert_eq!(
        r.state.consecutive_successes, 1,
        "a different database is a new probe"
    );
}
