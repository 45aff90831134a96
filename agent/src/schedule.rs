//! Runs many (target, probe) pairs, each when it is due.
//!
//! - One driver task; due times live in a binary heap keyed by `Instant` (no fixed tick), so
//!   4,000 pairs at a 1 s period cost a few heap operations per probe.
//! - `next_due = last_start + period`; a pair is never run twice at once (a probe slower than its
//!   period runs again right after it ends, like the kubelet's ticker dropping ticks). So a
//!   `timeout` longer than the `period` (accepted on v1alpha1, as Deckhouse does) means a slow
//!   target is probed at most every `timeout`: the next run starts when the previous one ended.
//!   This holds across a remove and re-add of the same key too: a pair re-added while its
//!   removed run is still in flight starts when that run ends.
//! - First run: `start + initial_delay` (start is e.g. the pod's creation). A pair whose start
//!   is less than one period ago runs as soon as allowed (a new pod gets a verdict fast); older
//!   ones (agent restart, bulk add) get a random phase within one period so they don't all fire
//!   together.
//! - At most `max_concurrency` probes run at once; due pairs beyond that wait in FIFO order and
//!   the wait shows up as scheduling lag (`started - due`) in every [`ProbeResult`].
//! - [`Scheduler::upsert`]/[`Scheduler::remove`] work while running. Results of a removed pair,
//!   or of a run started before its target or probe kind changed, are dropped.
//! - Fast transitions (a spec with `transition_period`, from v1beta1 `transitionPeriodSeconds`):
//!   while results disagree with the pair's state ([`Threshold::agrees`]: a failure of a passing
//!   pair, a success of a failing one, any result before a verdict), the next run starts
//!   `transition_period` after the previous one instead of `period`; once the threshold decides
//!   or a result agrees again (the streak broke), the period resumes. Thresholds count results
//!   as always, so a failure threshold of 3 decides after 2 more runs at the fast interval.
//! - Immediate signals (fast-transition specs only): a failed run whose connect was refused
//!   ([`ProbeOutcome::signal`]) makes the next run start at once instead of after the fast
//!   interval, and a persistent PostgreSQL session closed by the server ([`Signal`], from the
//!   runner) makes the next run of the pairs probing that target start at once. The signal is
//!   not a result: the run it triggers counts as one normal result. A run started by a signal
//!   never triggers another immediate run, so a target that keeps signalling is probed at most
//!   twice per `transition_period` (no tight loop).
//! - Every result goes to the results channel with the hysteresis state ([`Threshold`]) and the
//!   transition it caused, if any. A full channel holds the scheduler back (backpressure).
//!
//! Time is `tokio::time::Instant`, so tests drive it deterministically with paused time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::probe::{PgConnection, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTarget, Prober, Signal};
use crate::threshold::{Threshold, Transition};

/// What the scheduler calls to run one attempt. [`Prober`] is the real one; tests may pass a
/// closure `Fn(Arc<ProbeSpec>, ProbeTarget) -> BoxFuture<'static, ProbeOutcome>`.
pub trait ProbeRunner: Send + Sync + 'static {
    fn run(&self, spec: Arc<ProbeSpec>, target: ProbeTarget) -> BoxFuture<'static, ProbeOutcome>;

    /// Called when a pair is removed or changes target/kind (e.g. to close a persistent
    /// connection).
    fn release(&self, _spec: &ProbeSpec, _target: ProbeTarget) {}

    /// Called when a pair's spec changed without a reset (e.g. new credentials): `old` will not
    /// run again. By default, a different kind releases `old`.
    fn replaced(&self, old: &ProbeSpec, spec: &ProbeSpec, target: ProbeTarget) {
        if old.kind != spec.kind {
            self.release(old, target);
        }
    }

    /// Gives the runner the channel for [`Signal`]s it sees outside runs (called once, by
    /// [`Scheduler::spawn`]). By default it has none.
    fn set_signals(&self, _signals: mpsc::UnboundedSender<Signal>) {}
}

impl ProbeRunner for Prober {
    fn run(&self, spec: Arc<ProbeSpec>, target: ProbeTarget) -> BoxFuture<'static, ProbeOutcome> {
        let prober = self.clone();
        Box::pin(async move { prober.probe(&spec, target).await })
    }

    fn release(&self, spec: &ProbeSpec, target: ProbeTarget) {
        Prober::release(self, spec, target);
    }

    fn replaced(&self, old: &ProbeSpec, spec: &ProbeSpec, target: ProbeTarget) {
        Prober::replaced(self, old, spec, target);
    }

    fn set_signals(&self, signals: mpsc::UnboundedSender<Signal>) {
        Prober::set_signals(self, signals);
    }
}

impl<F> ProbeRunner for F
where
    F: Fn(Arc<ProbeSpec>, ProbeTarget) -> BoxFuture<'static, ProbeOutcome> + Send + Sync + 'static,
{
    fn run(&self, spec: Arc<ProbeSpec>, target: ProbeTarget) -> BoxFuture<'static, ProbeOutcome> {
        self(spec, target)
    }
}

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Probes running at once, at most (≥ 1).
    pub max_concurrency: usize,
    /// Capacity of the results channel.
    pub results_capacity: usize,
    /// Seed for the phase jitter; `None` = from the clock. Set it in tests for repeatability.
    pub seed: Option<u64>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 512,
            results_capacity: 4096,
            seed: None,
        }
    }
}

/// One finished attempt of one pair.
#[derive(Clone, Debug)]
pub struct ProbeResult<K> {
    pub key: K,
    pub target: ProbeTarget,
    pub probe: Arc<ProbeSpec>,
    pub outcome: ProbeOutcome,
    /// Hysteresis state after this result.
    pub state: Threshold,
    /// Set when this result changed the state.
    pub transition: Option<Transition>,
    /// When the attempt was due, and when it actually started.
    pub due: Instant,
    pub started: Instant,
    /// `started - due`: time spent waiting for the driver or for a concurrency slot.
    pub lag: Duration,
}

enum Command<K> {
    Upsert {
        key: K,
        target: ProbeTarget,
        spec: Arc<ProbeSpec>,
        start: Instant,
    },
    Remove(K),
}

/// Handle to a running scheduler; cheap to clone. The scheduler stops when every handle is
/// dropped or the results receiver is dropped.
pub struct Scheduler<K> {
    tx: mpsc::UnboundedSender<Command<K>>,
}

impl<K> Clone for Scheduler<K> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<K> Scheduler<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// Spawns the driver on the current Tokio runtime.
    pub fn spawn<R: ProbeRunner>(
        runner: R,
        config: SchedulerConfig,
    ) -> (Self, mpsc::Receiver<ProbeResult<K>>) {
        let (tx, commands) = mpsc::unbounded_channel();
        let (results_tx, results) = mpsc::channel(config.results_capacity.max(1));
        let (signals_tx, signals) = mpsc::unbounded_channel();
        runner.set_signals(signals_tx);
        let seed = config.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
        });
        let driver = Driver {
            runner: Arc::new(runner),
            max_concurrency: config.max_concurrency.max(1),
            results: results_tx,
            rng: SplitMix64(seed),
            ids: HashMap::new(),
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            waiting: VecDeque::new(),
            running: JoinSet::new(),
            next_id: 0,
            draining: HashMap::new(),
        };
        tokio::spawn(driver.run(commands, signals));
        (Self { tx }, results)
    }

    /// Adds a pair, or updates it. `start` is when the target came up (e.g. pod creation):
    /// the first probe runs no earlier than `start + spec.initial_delay`.
    ///
    /// On update, a different target or probe kind resets the pair to `Unknown` and drops the
    /// result of a run in progress; other changes (timing, thresholds, name, credentials: see
    /// [`resets`]) keep its state and apply from the next run.
    pub fn upsert(
        &self,
        key: K,
        target: ProbeTarget,
        spec: impl Into<Arc<ProbeSpec>>,
        start: Instant,
    ) {
        let _ = self.tx.send(Command::Upsert {
            key,
            target,
            spec: spec.into(),
            start,
        });
    }

    /// Removes a pair; a result still in flight is dropped.
    pub fn remove(&self, key: K) {
        let _ = self.tx.send(Command::Remove(key));
    }

    /// Whether the driver is still running.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Whether an update of a pair from (`old_target`, `old`) to (`target`, `spec`) resets it to
/// `Unknown`: a different target or probe kind does; timing, thresholds, name and credentials
/// ([`crate::probe::ProbeKind::same_but_credentials`]) don't, so a rotated Secret never makes
/// a healthy endpoint not ready.
pub fn resets(
    old_target: ProbeTarget,
    old: &ProbeSpec,
    target: ProbeTarget,
    spec: &ProbeSpec,
) -> bool {
    old_target != target || !old.kind.same_but_credentials(&spec.kind)
}

/// Converts a wall-clock time (e.g. a pod's `creationTimestamp`) to an `Instant` for
/// [`Scheduler::upsert`]. Times in the future map to now.
pub fn instant_from_system(t: SystemTime) -> Instant {
    let now = Instant::now();
    match SystemTime::now().duration_since(t) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(_) => now,
    }
}

struct Entry<K> {
    key: K,
    target: ProbeTarget,
    spec: Arc<ProbeSpec>,
    start: Instant,
    threshold: Threshold,
    /// Bumped when the target or kind changes: results of older runs are dropped.
    result_epoch: u64,
    /// Bumped on every (re)schedule: older heap items are stale.
    sched_epoch: u64,
    next_due: Instant,
    last_start: Option<Instant>,
    state: RunState,
    /// The next run (scheduled or running) was brought forward by an immediate signal.
    signalled: bool,
    /// The last finished run had been brought forward by a signal.
    last_signalled: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunState {
    /// Has one valid heap item at `next_due`.
    Scheduled,
    /// Due, waiting for a concurrency slot (in `waiting`).
    Waiting,
    Running,
    /// Due, but a removed run of the same key is still in flight (in `draining`): starts when
    /// that run ends.
    Blocked,
}

struct Done {
    id: u64,
    result_epoch: u64,
    signalled: bool,
    due: Instant,
    started: Instant,
    outcome: ProbeOutcome,
}

struct Driver<K> {
    runner: Arc<dyn ProbeRunner>,
    max_concurrency: usize,
    results: mpsc::Sender<ProbeResult<K>>,
    rng: SplitMix64,
    ids: HashMap<K, u64>,
    entries: HashMap<u64, Entry<K>>,
    heap: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    waiting: VecDeque<u64>,
    running: JoinSet<Done>,
    next_id: u64,
    /// Runs still in flight of removed pairs, by key (the id of the removed entry).
    draining: HashMap<K, u64>,
}

impl<K> Driver<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<K>>,
        mut signals: mpsc::UnboundedReceiver<Signal>,
    ) {
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            self.fire_due(Instant::now());
            let next = self.heap.peek().map(|Reverse((due, _, _))| *due);
            if next != armed {
                sleep.as_mut().reset(next.unwrap_or_else(far));
                armed = next;
            }
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.apply(cmd),
                    None => break,
                },
                Some(signal) = signals.recv() => self.signal(signal),
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    let done = match done {
                        Ok(done) => done,
                        // A probe task panicked or was cancelled: its pair would never run
                        // again. Probes don't panic on network input; log loudly if one did.
                        Err(e) => {
                            tracing::error!(error = %e, "probe task failed");
                            continue;
                        }
                    };
                    if self.finish(done).await.is_err() {
                        break;
                    }
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                }
            }
        }
        self.running.abort_all();
    }

    fn apply(&mut self, cmd: Command<K>) {
        let now = Instant::now();
        match cmd {
            Command::Upsert {
                key,
                target,
                spec,
                start,
            } => {
                let Some(&id) = self.ids.get(&key) else {
                    let id = self.next_id;
                    self.next_id += 1;
                    let due = self.first_due(now, start, &spec);
                    self.ids.insert(key.clone(), id);
                    self.entries.insert(
                        id,
                        Entry {
                            key,
                            target,
                            spec,
                            start,
                            threshold: Threshold::new(SystemTime::now()),
                            result_epoch: 0,
                            sched_epoch: 0,
                            next_due: due,
                            last_start: None,
                            state: RunState::Scheduled,
                            signalled: false,
                            last_signalled: false,
                        },
                    );
                    self.heap.push(Reverse((due, id, 0)));
                    return;
                };
                let Some(entry) = self.entries.get_mut(&id) else {
                    return;
                };
                if entry.target == target && *entry.spec == *spec && entry.start == start {
                    return;
                }
                let reset = resets(entry.target, &entry.spec, target, &spec);
                let old_spec = std::mem::replace(&mut entry.spec, spec.clone());
                let old_target = entry.target;
                entry.target = target;
                entry.start = start;
                let due = if reset {
                    entry.result_epoch += 1;
                    entry.signalled = false;
                    entry.last_signalled = false;
                    entry.threshold.reset(SystemTime::now());
                    entry.last_start = None;
                    self.runner.release(&old_spec, old_target);
                    // Recomputed below (needs &mut self for the jitter).
                    None
                } else {
                    self.runner.replaced(&old_spec, &spec, target);
                    let earliest = start + spec.initial_delay;
                    Some(match entry.last_start {
                        Some(last) => (last + spec.period).max(earliest),
                        None => earliest.max(entry.next_due.min(now + spec.period)),
                    })
                };
                let due = match due {
                    Some(d) => d,
                    None => self.first_due(now, start, &spec),
                };
                let Some(entry) = self.entries.get_mut(&id) else {
                    return;
                };
                entry.next_due = due;
                if entry.state == RunState::Scheduled {
                    entry.sched_epoch += 1;
                    self.heap.push(Reverse((due, id, entry.sched_epoch)));
                }
                // Waiting: keeps its place in line. Running: rescheduled from `next_due` when done.
            }
            Command::Remove(key) => {
                if let Some(id) = self.ids.remove(&key)
                    && let Some(entry) = self.entries.remove(&id)
                {
                    self.runner.release(&entry.spec, entry.target);
                    if entry.state == RunState::Running {
                        self.draining.insert(key, id);
                    }
                }
            }
        }
    }

    fn first_due(&mut self, now: Instant, start: Instant, spec: &ProbeSpec) -> Instant {
        let base = (start + spec.initial_delay).max(now);
        if now.saturating_duration_since(start) < spec.period {
            base
        } else {
            base + self.rng.below(spec.period)
        }
    }

    /// Starts (or queues) every pair due by `now`.
    fn fire_due(&mut self, now: Instant) {
        while let Some(Reverse((due, id, epoch))) = self.heap.peek().copied() {
            if due > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.sched_epoch != epoch || entry.state != RunState::Scheduled {
                continue;
            }
            if self.running.len() < self.max_concurrency {
                self.start(id);
            } else {
                entry.state = RunState::Waiting;
                self.waiting.push_back(id);
            }
        }
    }

    fn start(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if self.draining.contains_key(&entry.key) {
            entry.state = RunState::Blocked;
            return;
        }
        let started = Instant::now();
        let due = entry.next_due;
        entry.state = RunState::Running;
        entry.last_start = Some(started);
        let signalled = std::mem::take(&mut entry.signalled);
        let fut = self.runner.run(entry.spec.clone(), entry.target);
        let result_epoch = entry.result_epoch;
        self.running.spawn(async move {
            let outcome = fut.await;
            Done {
                id,
                result_epoch,
                signalled,
                due,
                started,
                outcome,
            }
        });
    }

    /// Handles a finished run; `Err` when nobody listens for results any more.
    async fn finish(&mut self, done: Done) -> Result<(), ()> {
        let result = match self.entries.get_mut(&done.id) {
            None => {
                // Removed meanwhile: its result is dropped, and a pair re-added under the same
                // key may start now.
                self.undrain(done.id);
                None
            }
            Some(entry) => {
                let current = done.result_epoch == entry.result_epoch;
                let transition = if current {
                    entry.threshold.record(
                        done.outcome.ok,
                        &done.outcome.message,
                        SystemTime::now(),
                        entry.spec.success_threshold,
                        entry.spec.failure_threshold,
                    )
                } else {
                    None
                };
                let (next, signalled) = if current {
                    next_run(entry, &done)
                } else {
                    (entry.next_due, entry.signalled)
                };
                entry.last_signalled = done.signalled;
                entry.signalled = signalled;
                entry.next_due = next.max(entry.start + entry.spec.initial_delay);
                entry.state = RunState::Scheduled;
                entry.sched_epoch += 1;
                self.heap
                    .push(Reverse((entry.next_due, done.id, entry.sched_epoch)));
                current.then(|| ProbeResult {
                    key: entry.key.clone(),
                    target: entry.target,
                    probe: entry.spec.clone(),
                    state: entry.threshold.clone(),
                    transition,
                    due: done.due,
                    started: done.started,
                    lag: done.started.saturating_duration_since(done.due),
                    outcome: done.outcome,
                })
            }
        };
        // A slot is free: start whoever waited longest.
        while self.running.len() < self.max_concurrency {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&id)
                .is_some_and(|e| e.state == RunState::Waiting)
            {
                self.start(id);
            }
        }
        if let Some(result) = result {
            self.results.send(result).await.map_err(|_| ())?;
        }
        Ok(())
    }
}

/// When the pair's next run starts after `done` (already recorded in its threshold), and whether
/// that run is brought forward by a signal.
fn next_run<K>(entry: &Entry<K>, done: &Done) -> (Instant, bool) {
    let spec = &entry.spec;
    let Some(fast) = spec.transition_period else {
        return (done.started + spec.period, false);
    };
    if entry.threshold.agrees(done.outcome.ok) {
        // Decided, or the streak broke: back to the period.
        return (done.started + spec.period, false);
    }
    if done.outcome.signal && !done.signalled {
        return (Instant::now(), true);
    }
    (done.started + fast.min(spec.period), false)
}

/// Whether a [`Signal`] for the pair's target concerns it: a persistent PostgreSQL probe with
/// fast transitions.
fn takes_session_signals(spec: &ProbeSpec) -> bool {
    spec.fast_transitions()
        && matches!(&spec.kind, ProbeKind::Postgres(p) if p.connection == PgConnection::Persistent)
}

impl<K> Driver<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// A persistent session to `signal.target` was closed by the server: the pairs that probe
    /// it over such a session and wait for their next run run now (at most every
    /// `transition_period` when their last run was itself signalled). Running or queued pairs
    /// are left alone: their run is under way.
    fn signal(&mut self, signal: Signal) {
        let now = Instant::now();
        for (&id, entry) in self.entries.iter_mut() {
            if entry.target != signal.target
                || entry.state != RunState::Scheduled
                || !takes_session_signals(&entry.spec)
            {
                continue;
            }
            let mut due = now.max(entry.start + entry.spec.initial_delay);
            if entry.last_signalled
                && let (Some(last), Some(fast)) = (entry.last_start, entry.spec.transition_period)
            {
                due = due.max(last + fast);
            }
            if due >= entry.next_due {
                continue;
            }
            entry.next_due = due;
            entry.signalled = true;
            entry.sched_epoch += 1;
            self.heap.push(Reverse((due, id, entry.sched_epoch)));
        }
    }

    /// The removed run `id` ended: a pair of the same key that was blocked on it is due now.
    fn undrain(&mut self, id: u64) {
        let Some(key) = self
            .draining
            .iter()
            .find(|(_, d)| **d == id)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        self.draining.remove(&key);
        let Some(&new_id) = self.ids.get(&key) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(&new_id)
            && entry.state == RunState::Blocked
        {
            entry.state = RunState::Scheduled;
            entry.sched_epoch += 1;
            entry.next_due = entry.next_due.max(Instant::now());
            self.heap
                .push(Reverse((entry.next_due, new_id, entry.sched_epoch)));
        }
    }
}

/// Small, fast PRNG for phase jitter (quality is irrelevant, spread is what matters).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, d)` at nanosecond resolution; zero for a zero `d`.
    fn below(&mut self, d: Duration) -> Duration {
        let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next() % nanos)
    }
}

#[cfg(test)]
mod tests {
    //! The "timeout longer than the period" semantics (v1alpha1 accepts it, as Deckhouse does):
    //! never two runs at once on one (target, probe) pair; the next run starts when the previous
    //! one ended, so a slow target is probed at most every `timeout`.

    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Mutex;

    use super::*;
    use crate::probe::ProbeKind;

    /// Per port: runs in flight now, the most ever in flight, and every start.
    #[derive(Default)]
    struct Track {
        in_flight: HashMap<u16, usize>,
        max_in_flight: HashMap<u16, usize>,
        starts: Vec<(u16, Instant)>,
    }

    /// A runner whose targets never answer: every run ends at its timeout, as the real prober's.
    fn hanging(track: Arc<Mutex<Track>>) -> impl ProbeRunner {
        move |spec: Arc<ProbeSpec>, target: ProbeTarget| -> BoxFuture<'static, ProbeOutcome> {
            let track = track.clone();
            Box::pin(async move {
                {
                    let mut t = track.lock().unwrap_or_else(|e| e.into_inner());
                    let n = {
                        let n = t.in_flight.entry(target.port).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let max = t.max_in_flight.entry(target.port).or_insert(0);
                    *max = (*max).max(n);
                    t.starts.push((target.port, Instant::now()));
                }
                let hang = tokio::time::sleep(Duration::from_secs(3600));
                let _ = tokio::time::timeout(spec.timeout, hang).await;
                let mut t = track.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = t.in_flight.get_mut(&target.port) {
                    *n -= 1;
                }
                ProbeOutcome::failure("timeout after 3s", spec.timeout)
            })
        }
    }

    fn slow_spec() -> ProbeSpec {
        ProbeSpec {
            timeout: Duration::from_secs(3),
            period: Duration::from_secs(1),
            initial_delay: Duration::ZERO,
            ..ProbeSpec::new("pg", ProbeKind::Tcp)
        }
    }

    fn target(port: u16) -> ProbeTarget {
        ProbeTarget::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), port)
    }

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            seed: Some(7),
            ..Default::default()
        }
    }

    async fn next(rx: &mut mpsc::Receiver<ProbeResult<&'static str>>) -> ProbeResult<&'static str> {
        match tokio::time::timeout(Duration::from_secs(3600), rx.recv()).await {
            Ok(Some(r)) => r,
            other => panic!(
                "no result within an hour of paused time: {:?}",
                other.is_ok()
            ),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_longer_than_the_period_never_overlaps_runs_on_one_target() {
        let track = Arc::new(Mutex::new(Track::default()));
        let (sched, mut rx) = Scheduler::spawn(hanging(track.clone()), config());
        let t0 = Instant::now();
        sched.upsert("pg", target(5432), slow_spec(), t0);
        let mut starts = Vec::new();
        for _ in 0..5 {
            let r = next(&mut rx).await;
            assert!(!r.outcome.ok);
            starts.push((r.started - t0).as_secs());
        }
        // Period 1 s, timeout 3 s, a target that never answers: every 3 s, back to back.
        assert_eq!(starts, vec![0, 3, 6, 9, 12]);
        let t = track.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(t.max_in_flight.get(&5432), Some(&1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_re_added_while_its_removed_run_is_in_flight_waits_for_it() {
        let track = Arc::new(Mutex::new(Track::default()));
        let (sched, mut rx) = Scheduler::spawn(hanging(track.clone()), config());
        let t0 = Instant::now();
        sched.upsert("pg", target(5432), slow_spec(), t0);
        // Removed at 1 s (e.g. the pod went not ready), re-added at 1.5 s: the first run, started
        // at 0 s, still hangs until its timeout at 3 s.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        sched.remove("pg");
        tokio::time::sleep(Duration::from_millis(500)).await;
        sched.upsert("pg", target(5432), slow_spec(), t0);
        let r = next(&mut rx).await;
        assert_eq!(
            r.started - t0,
            Duration::from_secs(3),
            "starts when the removed run ends, not before"
        );
        let r = next(&mut rx).await;
        assert_eq!(r.started - t0, Duration::from_secs(6));
        let t = track.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(t.max_in_flight.get(&5432), Some(&1), "{:?}", t.starts);
    }

    #[tokio::test(start_paused = true)]
    async fn other_targets_are_not_held_back_by_a_slow_one() {
        let track = Arc::new(Mutex::new(Track::default()));
        let (sched, mut rx) = Scheduler::spawn(hanging(track.clone()), config());
        let t0 = Instant::now();
        sched.upsert("slow", target(1), slow_spec(), t0);
        let quick = ProbeSpec {
            timeout: Duration::from_millis(100),
            ..slow_spec()
        };
        sched.upsert("quick", target(2), quick, t0);
        let mut quick_starts = Vec::new();
        while quick_starts.len() < 4 {
            let r = next(&mut rx).await;
            if r.key == "quick" {
                quick_starts.push((r.started - t0).as_secs());
            }
        }
        assert_eq!(quick_starts, vec![0, 1, 2, 3]);
    }

    /// Results in turn per probe name (the last repeats): `(ok, signal)`; every run is instant.
    #[derive(Default)]
    struct Plan {
        results: HashMap<String, Vec<(bool, bool)>>,
        runs: HashMap<String, usize>,
        signals: Option<mpsc::UnboundedSender<Signal>>,
    }

    #[derive(Clone, Default)]
    struct Planned(Arc<Mutex<Plan>>);

    impl Planned {
        /// Results of the probe named `pg`.
        fn with(_port: u16, results: &[(bool, bool)]) -> Self {
            let p = Planned::default();
            p.lock().results.insert("pg".into(), results.to_vec());
            p
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn send(&self, signal: Signal) {
            if let Some(tx) = self.lock().signals.as_ref() {
                let _ = tx.send(signal);
            }
        }
    }

    impl ProbeRunner for Planned {
        fn run(
            &self,
            spec: Arc<ProbeSpec>,
            _target: ProbeTarget,
        ) -> BoxFuture<'static, ProbeOutcome> {
            let mut plan = self.lock();
            let n = {
                let n = plan.runs.entry(spec.name.clone()).or_insert(0);
                *n += 1;
                *n - 1
            };
            let (ok, signal) = plan
                .results
                .get(&spec.name)
                .and_then(|r| r.get(n).or(r.last()).copied())
                .unwrap_or((true, false));
            let outcome = if ok {
                ProbeOutcome::success("ok", Duration::ZERO)
            } else {
                ProbeOutcome::failure("connection refused", Duration::ZERO)
            };
            Box::pin(std::future::ready(outcome.with_signal(signal)))
        }

        fn set_signals(&self, signals: mpsc::UnboundedSender<Signal>) {
            self.lock().signals = Some(signals);
        }
    }

    /// Period 10 s, thresholds 1/3, optional transition period.
    fn deckhouse_spec(kind: ProbeKind, transition: Option<u64>) -> ProbeSpec {
        ProbeSpec {
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            transition_period: transition.map(Duration::from_secs),
            ..ProbeSpec::new("pg", kind)
        }
    }

    /// Start offsets (ms from `t0`) and states of the first `n` results.
    async fn starts(
        rx: &mut mpsc::Receiver<ProbeResult<&'static str>>,
        t0: Instant,
        n: usize,
    ) -> Vec<(u128, crate::threshold::ProbeState)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = next(rx).await;
            out.push(((r.started - t0).as_millis(), r.state.state));
        }
        out
    }

    use crate::threshold::ProbeState::{Failing as F, Passing as P};

    const OK: (bool, bool) = (true, false);
    const BAD: (bool, bool) = (false, false);
    const REFUSED: (bool, bool) = (false, true);

    #[tokio::test(start_paused = true)]
    async fn a_failure_streak_runs_at_the_transition_period_and_decides_in_two_seconds() {
        let runner = Planned::with(5432, &[OK, BAD, BAD, BAD]);
        let (sched, mut rx) = Scheduler::spawn(runner, config());
        let t0 = Instant::now();
        sched.upsert(
            "pg",
            target(5432),
            deckhouse_spec(ProbeKind::Tcp, Some(1)),
            t0,
        );
        // Passing at 0; the failure at 10 s disagrees: 11 s, 12 s (failing: 3 in a row, 2 s
        // after the first failure instead of 20 s); then the period again: 22 s, 32 s.
        assert_eq!(
            starts(&mut rx, t0, 6).await,
            vec![
                (0, P),
                (10_000, P),
                (11_000, P),
                (12_000, F),
                (22_000, F),
                (32_000, F)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_streak_returns_to_the_period() {
        let runner = Planned::with(5432, &[OK, BAD, BAD, OK]);
        let (sched, mut rx) = Scheduler::spawn(runner, config());
        let t0 = Instant::now();
        sched.upsert(
            "pg",
            target(5432),
            deckhouse_spec(ProbeKind::Tcp, Some(1)),
            t0,
        );
        assert_eq!(
            starts(&mut rx, t0, 6).await,
            vec![
                (0, P),
                (10_000, P),
                (11_000, P),
                (12_000, P),
                (22_000, P),
                (32_000, P)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_recovery_streak_runs_fast_too_and_thresholds_keep_their_count() {
        let runner = Planned::with(5432, &[BAD, BAD, BAD, BAD, OK, OK, OK]);
        let (sched, mut rx) = Scheduler::spawn(runner, config());
        let t0 = Instant::now();
        let spec = ProbeSpec {
            success_threshold: 3,
            ..deckhouse_spec(ProbeKind::Tcp, Some(2))
        };
        sched.upsert("pg", target(5432), spec, t0);
        let got = starts(&mut rx, t0, 8).await;
        use crate::threshold::ProbeState::Unknown as U;
        // No verdict yet: every result disagrees, so 0, 2, 4 s until failing at 4 s; agreeing
        // failures at the period; the successes at 24 s, 26 s, 28 s (passing after 3); 38 s.
        assert_eq!(
            got,
            vec![
                (0, U),
                (2_000, U),
                (4_000, F),
                (14_000, F),
                (24_000, F),
                (26_000, F),
                (28_000, P),
                (38_000, P)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_transition_period_the_schedule_is_unchanged() {
        let runner = Planned::with(5432, &[OK, REFUSED, REFUSED, REFUSED]);
        let (sched, mut rx) = Scheduler::spawn(runner.clone(), config());
        let t0 = Instant::now();
        let pg = ProbeKind::Postgres(crate::probe::PostgresSpec::new(Err("x".into())));
        sched.upsert("pg", target(5432), deckhouse_spec(pg, None), t0);
        let first = next(&mut rx).await;
        assert_eq!(first.started, t0);
        // Neither a session signal nor refused connects move anything: 10, 20, 30 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        runner.send(Signal {
            target: target(5432),
        });
        assert_eq!(
            starts(&mut rx, t0, 3).await,
            vec![(10_000, P), (20_000, P), (30_000, F)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_connect_brings_the_next_run_forward_once() {
        let runner = Planned::with(5432, &[OK, REFUSED, REFUSED, REFUSED, REFUSED]);
        let (sched, mut rx) = Scheduler::spawn(runner, config());
        let t0 = Instant::now();
        sched.upsert(
            "pg",
            target(5432),
            deckhouse_spec(ProbeKind::Tcp, Some(1)),
            t0,
        );
        // Refused at 10 s: again at once (counted: 2 of 3), but that run's refusal does not
        // trigger another: 11 s decides. Failing agrees: the period, refused or not.
        assert_eq!(
            starts(&mut rx, t0, 5).await,
            vec![(0, P), (10_000, P), (10_000, P), (11_000, F), (21_000, F)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_closed_by_the_server_runs_the_next_probe_at_once() {
        let runner = Planned::with(5432, &[OK, BAD, BAD, BAD]);
        let (sched, mut rx) = Scheduler::spawn(runner.clone(), config());
        let t0 = Instant::now();
        let pg = ProbeKind::Postgres(crate::probe::PostgresSpec::new(Err("x".into())));
        sched.upsert("pg", target(5432), deckhouse_spec(pg, Some(1)), t0);
        // Another target's pair and a TCP pair on the same target are not woken.
        let tcp = ProbeSpec {
            name: "tcp".into(),
            ..deckhouse_spec(ProbeKind::Tcp, Some(1))
        };
        sched.upsert("tcp", target(5432), tcp, t0);
        let mut first = Vec::new();
        for _ in 0..2 {
            first.push(next(&mut rx).await.key);
        }
        first.sort();
        assert_eq!(first, vec!["pg", "tcp"]);
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        runner.send(Signal {
            target: target(9999),
        });
        runner.send(Signal {
            target: target(5432),
        });
        // A second signal right after the signalled run: at most every transition period.
        let r = next(&mut rx).await;
        assert_eq!(
            (r.key, (r.started - t0).as_millis(), r.state.state),
            ("pg", 3_500, P)
        );
        runner.send(Signal {
            target: target(5432),
        });
        let got = starts(&mut rx, t0, 2).await;
        assert_eq!(got, vec![(4_500, P), (5_500, F)]);
        // Failing: the period again, from 5.5 s; the TCP pair kept its own period all along.
        let mut rest = Vec::new();
        for _ in 0..3 {
            let r = next(&mut rx).await;
            rest.push((r.key, (r.started - t0).as_millis()));
        }
        rest.sort();
        assert_eq!(rest, vec![("pg", 15_500), ("tcp", 10_000), ("tcp", 20_000)]);
    }
}
