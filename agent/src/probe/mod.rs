//! The probe engine: one attempt of one probe against one target, bounded by its timeout.
//!
//! Pure of Kubernetes: callers build a [`ProbeSpec`] (from the CRD's probe, with the port already
//! resolved per pod into a [`ProbeTarget`]) and call [`Prober::probe`]. Every attempt returns a
//! [`ProbeOutcome`] whose `message` says in words what happened; nothing is dropped silently:
//! a missing Secret or a bad CA is a failing outcome with a readable reason.
//!
//! Semantics follow the kubelet where one exists (see `reference/probing-anchors.md` §1):
//! TCP connects and closes without writing; HTTP opens a new connection per probe, accepts
//! 200–399 by default, follows same-host redirects only (at most 10) and reads at most 10 KiB of
//! body; gRPC calls `grpc.health.v1.Health/Check` in plaintext.

pub mod grpc;
pub mod http;
pub mod postgres;
pub mod tcp;
mod tls;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use grpc::GrpcSpec;
pub use http::{HttpMethod, HttpScheme, HttpSpec, StatusRange};
pub use postgres::{PgConnection, PgCredentials, PgTls, PgTlsMode, PostgresSpec};

/// One probe as the engine runs it. The port lives in [`ProbeTarget`] (resolved per pod).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Probe name (a DNS label in v1beta1; `<mode>-<index>` or similar for v1alpha1).
    pub name: String,
    pub kind: ProbeKind,
    /// Bound for the whole attempt: connect, TLS, request and body.
    pub timeout: Duration,
    pub period: Duration,
    /// Measured from the start instant the caller gives the scheduler (e.g. pod creation).
    pub initial_delay: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Fast transitions (`transitionPeriodSeconds`): while results disagree with the state, the
    /// next run starts this long after the previous one instead of `period`. `None`: off (the
    /// period throughout, and no immediate re-probes on signals).
    pub transition_period: Option<Duration>,
}

impl ProbeSpec {
    /// A spec with kubelet defaults (timeout 1 s, period 10 s, delay 0, thresholds 1/3).
    pub fn new(name: impl Into<String>, kind: ProbeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            timeout: Duration::from_secs(1),
            period: Duration::from_secs(10),
            initial_delay: Duration::ZERO,
            success_threshold: 1,
            failure_threshold: 3,
            transition_period: None,
        }
    }

    /// Whether fast transitions and immediate signals are on for this probe.
    pub fn fast_transitions(&self) -> bool {
        self.transition_period.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Connect, then close; nothing is written.
    Tcp,
    Http(HttpSpec),
    Postgres(PostgresSpec),
    Grpc(GrpcSpec),
}

impl ProbeKind {
    /// A short lowercase label for metrics and logs: `tcp`, `http`, `postgres`, `grpc`.
    pub fn label(&self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Http(_) => "http",
            ProbeKind::Postgres(_) => "postgres",
            ProbeKind::Grpc(_) => "grpc",
        }
    }

    /// Whether `other` is the same probe, credentials aside: a PostgreSQL probe whose Secret
    /// changed (rotated password, new client certificate or CA, or a Secret that appeared) is
    /// still the same probe, so its state is kept; [`Prober::replaced`] drops a persistent
    /// connection made with the old credentials. Every other difference of kind is a new probe.
    pub fn same_but_credentials(&self, other: &ProbeKind) -> bool {
        match (self, other) {
            (ProbeKind::Postgres(a), ProbeKind::Postgres(b)) => a.same_but_credentials(b),
            (a, b) => a == b,
        }
    }
}

/// Where a probe goes: the pod IP and the port resolved for this pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeTarget {
    pub ip: IpAddr,
    pub port: u16,
}

impl ProbeTarget {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Self { ip, port }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl fmt::Display for ProbeTarget {
    /// `10.0.0.5:8080` or `[fd00::5]:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket_addr().fmt(f)
    }
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ok: bool,
    /// What happened, in words: `connection refused`, `503 Service Unavailable`,
    /// `timeout after 1s`, `query returned false`, `secret cred-secret not found`, ...
    pub message: String,
    /// Wall time of the attempt.
    pub duration: Duration,
    /// An immediate signal seen during the attempt (a connect refused by the target): the
    /// target is changing state, so a scheduler with fast transitions runs the next probe at
    /// once. The outcome itself counts as one normal result.
    pub signal: bool,
}

impl ProbeOutcome {
    pub fn success(message: impl Into<String>, duration: Duration) -> Self {
        Self {
            ok: true,
            message: message.into(),
            duration,
            signal: false,
        }
    }

    pub fn failure(message: impl Into<String>, duration: Duration) -> Self {
        Self {
            ok: false,
            message: message.into(),
            duration,
            signal: false,
        }
    }

    /// The same outcome, marked with an immediate signal.
    pub fn with_signal(mut self, signal: bool) -> Self {
        self.signal = signal;
        self
    }
}

/// An immediate signal seen outside of any attempt: the server closed the persistent
/// PostgreSQL session held for `target` (e.g. it is shutting down). Sent by the [`Prober`] to
/// the scheduler's channel ([`Prober::set_signals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    pub target: ProbeTarget,
}

tokio::task_local! {
    /// Set by [`tcp::connect`] when a connect of the current attempt was refused.
    static REFUSED: std::cell::Cell<bool>;
}

/// Records that a connect of the running attempt was refused (no-op outside an attempt).
pub(crate) fn note_refused() {
    let _ = REFUSED.try_with(|r| r.set(true));
}

/// Outcome of a probe body before timing is attached: `Ok(message)` passes, `Err(message)` fails.
pub(crate) type Attempt = Result<String, String>;

/// Runs probes. Cheap to clone (an `Arc`); holds what is worth reusing between probes:
/// TLS client configurations per distinct TLS setting and persistent PostgreSQL connections.
/// Sockets are never reused for HTTP/TCP/gRPC (one connection per probe, like the kubelet),
/// so a dead backend can't hide behind a pooled connection.
#[derive(Clone, Default)]
pub struct Prober {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tls: tls::TlsCache,
    pg: postgres::PgPool,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("tls_configs", &self.inner.tls.len())
            .field("pg_connections", &self.inner.pg.len())
            .finish()
    }
}

impl Prober {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one attempt of `spec` against `target`, bounded by `spec.timeout`.
    pub async fn probe(&self, spec: &ProbeSpec, target: ProbeTarget) -> ProbeOutcome {
        let start = Instant::now();
        let attempt = async {
            match &spec.kind {
                ProbeKind::Tcp => tcp::probe(target).await,
                ProbeKind::Http(h) => http::probe(&self.inner.tls, h, target).await,
                ProbeKind::Postgres(p) => {
                    postgres::probe(&self.inner.pg, &self.inner.tls, p, target).await
                }
                ProbeKind::Grpc(g) => grpc::probe(g, target).await,
            }
        };
        let (result, refused) = REFUSED
            .scope(std::cell::Cell::new(false), async {
                let result = tokio::time::timeout(spec.timeout, attempt).await;
                (result, REFUSED.try_with(|r| r.get()).unwrap_or(false))
            })
            .await;
        let duration = start.elapsed();
        let outcome = match result {
            Ok(Ok(message)) => ProbeOutcome::success(message, duration),
            Ok(Err(message)) => ProbeOutcome::failure(message, duration),
            Err(_) => ProbeOutcome::failure(
                format!("timeout after {}", format_duration(spec.timeout)),
                duration,
            ),
        };
        // A refused connect that the attempt recovered from (e.g. a redirect) signals nothing.
        let signal = refused && !outcome.ok;
        outcome.with_signal(signal)
    }

    /// Where immediate signals seen outside attempts go ([`Signal`]): the server closing a
    /// persistent PostgreSQL session. Replaces an earlier channel.
    pub fn set_signals(&self, signals: tokio::sync::mpsc::UnboundedSender<Signal>) {
        self.inner.pg.set_signals(signals);
    }

    /// Drops any persistent connection held for (`spec`, `target`). Call it when a target or
    /// probe goes away; idle connections are also closed after a while on their own.
    pub fn release(&self, spec: &ProbeSpec, target: ProbeTarget) {
        if let ProbeKind::Postgres(p) = &spec.kind {
            self.inner.pg.release(p, target);
        }
    }

    /// `spec` replaced `old` for `target` without a reset (e.g. new credentials): drops a
    /// persistent connection that no longer matches what the next attempt will use.
    pub fn replaced(&self, old: &ProbeSpec, spec: &ProbeSpec, target: ProbeTarget) {
        if let (ProbeKind::Postgres(o), ProbeKind::Postgres(n)) = (&old.kind, &spec.kind) {
            self.inner.pg.replaced(o, n, target);
        }
    }

    /// Number of persistent PostgreSQL connections currently held (for metrics and tests).
    pub fn persistent_connections(&self) -> usize {
        self.inner.pg.len()
    }
}

/// `1s`, `250ms`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        if ms == 0 && !d.is_zero() {
            return format!("{}us", d.as_micros());
        }
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Describes an I/O error in words, without the `(os error N)` suffix.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref()
        && let Some(tls) = inner.downcast_ref::<rustls::Error>()
    {
        return tls::describe(tls);
    }
    let text = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by peer",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "no route to host",
        K::NetworkUnreachable => "network unreachable",
        K::TimedOut => "timed out",
        K::AddrNotAvailable => "address not available",
        K::UnexpectedEof => "connection closed by peer",
        K::BrokenPipe => "broken pipe",
        _ => {
            let s = e.to_string();
            let s = match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            };
            return lowercase_first(&s);
        }
    };
    text.to_string()
}

pub(crate) fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Walks an error's source chain for an `io::Error` or a `rustls::Error` and describes it;
/// falls back to the error's own text.
pub(crate) fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls::describe(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return describe_io(io);
        }
        cur = err.source();
    }
    lowercase_first(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(2050)), "2.05s");
    }

    #[test]
    fn io_errors_read_well() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&e), "connection refused");
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(describe_io(&e), "connection refused");
    }

    #[test]
    fn target_display_brackets_ipv6() {
        let t = ProbeTarget::new("::1".parse().unwrap(), 80);
        assert_eq!(t.to_string(), "[::1]:80");
        let t = ProbeTarget::new("10.0.0.5".parse().unwrap(), 8080);
        assert_eq!(t.to_string(), "10.0.0.5:8080");
    }
}
