//! PostgreSQL probe: log in and run a query that must return one boolean-ish value.
//!
//! - Credentials come from the caller (it reads the Secret keys `user`, `password` and optional
//!   `tlsMode`/`clientCert`/`clientKey`/`caCert`, Deckhouse format); a resolution failure is
//!   passed in as `Err(message)` and every attempt fails with that message.
//! - `db_name` defaults to the user name; `query` defaults to `select 1`. The first column of the
//!   first row must be true-ish: bool `t`, or text `true`/`y`/`yes`/`1`/`on` (case-insensitive).
//! - [`PgConnection::Persistent`] (default) keeps one connection per (target, settings) in the
//!   [`super::Prober`]: a query costs ~0.1 ms instead of ~6 ms for a new SCRAM login. A cached
//!   connection found dead is replaced within the same attempt, so a server restart costs no
//!   spurious failure once the server is back. [`PgConnection::PerProbe`] logs in every time.
//! - Bounded by the probe timeout (the caller's `tokio::time::timeout`). A query abandoned by a
//!   timeout is cancelled on the server with a cancel request, so it doesn't keep running there.
//!   No `options` startup parameter is sent (pgbouncer rejects it), only `application_name`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{TlsCache, TlsKey, Verify};
use super::{Attempt, ProbeTarget, Signal, describe_error, tcp};

pub const DEFAULT_QUERY: &str = "select 1";
const APPLICATION_NAME: &str = "swh-agent";
/// Persistent connections unused for this long are closed (their target is likely gone).
const IDLE_TTL: Duration = Duration::from_secs(300);
/// Bound for sending a cancel request after a timed-out query.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PgConnection {
    /// One connection per (target, settings), reused across probes, re-opened after a failure.
    #[default]
    Persistent,
    /// A new connection (and login) per probe, like Deckhouse.
    PerProbe,
}

/// TLS mode, libpq-style. Deckhouse `tlsMode` maps as: `Disabled` → `Disable`,
/// `SkipVerification` (and anything unknown, the Deckhouse default) → `Require`,
/// `VerifyCA` → `VerifyCa`, `VerifyAll` → `VerifyFull`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PgTlsMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it (unverified), plaintext otherwise.
    Prefer,
    /// TLS required, certificate not verified.
    #[default]
    Require,
    /// TLS required, certificate chain verified against `ca_pem` (or system roots), any name.
    VerifyCa,
    /// Like `VerifyCa`, and the certificate must name `server_name` (or the pod IP).
    VerifyFull,
}

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct PgTls {
    pub mode: PgTlsMode,
    /// Trusted CAs (PEM) for `VerifyCa`/`VerifyFull`; `None` = system roots.
    pub ca_pem: Option<String>,
    /// Client certificate chain and key (PEM) for certificate authentication.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    /// Name to send as SNI and to verify with `VerifyFull`; `None` = the pod IP.
    pub server_name: Option<String>,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.mode)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<pem>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PgCredentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for PgCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresSpec {
    /// Database; `None` or empty = the user name.
    pub db_name: Option<String>,
    /// Must return one boolean-ish value; empty = `select 1`.
    pub query: String,
    pub connection: PgConnection,
    pub tls: PgTls,
    /// Resolved by the caller from the Secret. `Err(message)` (e.g. `secret cred-secret not
    /// found`) makes every attempt fail with that message.
    pub credentials: Result<PgCredentials, String>,
}

impl PostgresSpec {
    /// `select 1`, persistent connection, TLS `Require`, the database named like the user.
    pub fn new(credentials: Result<PgCredentials, String>) -> Self {
        Self {
            db_name: None,
            query: DEFAULT_QUERY.to_string(),
            connection: PgConnection::Persistent,
            tls: PgTls::default(),
            credentials,
        }
    }

    /// Equal but for `credentials` and the TLS material that comes with them (CA, client
    /// certificate and key): what a Secret rotation changes.
    pub fn same_but_credentials(&self, other: &PostgresSpec) -> bool {
        self.db_name == other.db_name
            && self.query == other.query
            && self.connection == other.connection
            && self.tls.mode == other.tls.mode
            && self.tls.server_name == other.tls.server_name
    }

    fn key(&self, target: ProbeTarget) -> Option<PgKey> {
        let credentials = self.credentials.as_ref().ok()?;
        Some(PgKey {
            target,
            db_name: self.db_name.clone(),
            credentials: credentials.clone(),
            tls: self.tls.clone(),
        })
    }

    fn query(&self) -> &str {
        if self.query.trim().is_empty() {
            DEFAULT_QUERY
        } else {
            &self.query
        }
    }
}

/// What a persistent connection is keyed by: everything that shapes the session. The query is
/// not part of it (a changed query reuses the session).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PgKey {
    target: ProbeTarget,
    db_name: Option<String>,
    credentials: PgCredentials,
    tls: PgTls,
}

/// A logged-in session and what is needed to cancel its running query.
struct Session {
    client: Client,
    cancel: CancelCtx,
}

#[derive(Clone)]
struct CancelCtx {
    target: ProbeTarget,
    /// TLS settings for the cancel connection (`None` = plaintext).
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// Sends a cancel request for the session's running query when dropped while armed (i.e. when
/// the probe future is dropped by its timeout in the middle of the query).
struct CancelOnDrop {
    token: Option<tokio_postgres::CancelToken>,
    ctx: CancelCtx,
}

impl CancelOnDrop {
    fn arm(session: &Session) -> Self {
        Self {
            token: Some(session.client.cancel_token()),
            ctx: session.cancel.clone(),
        }
    }

    fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ctx = self.ctx.clone();
        runtime.spawn(async move {
            let cancel = async {
                let stream = TcpStream::connect(ctx.target.socket_addr()).await.ok()?;
                match ctx.tls {
                    None => token.cancel_query_raw(stream, NoTls).await.ok(),
                    Some((config, name)) => {
                        let mut make = MakeRustlsConnect::new((*config).clone());
                        let connector =
                            <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(
                                &mut make, &name,
                            )
                            .ok()?;
                        token.cancel_query_raw(stream, connector).await.ok()
                    }
                }
            };
            let _ = tokio::time::timeout(CANCEL_TIMEOUT, cancel).await;
        });
    }
}

struct Slot {
    session: tokio::sync::Mutex<Option<Session>>,
    last_used: Mutex<Instant>,
}

#[derive(Default)]
pub(crate) struct PgPool {
    slots: Mutex<HashMap<PgKey, Arc<Slot>>>,
    last_sweep: Mutex<Option<Instant>>,
    /// Where to say that the server closed a persistent session ([`Signal`]).
    signals: Mutex<Option<UnboundedSender<Signal>>>,
}

impl PgPool {
    pub fn set_signals(&self, signals: UnboundedSender<Signal>) {
        *lock(&self.signals) = Some(signals);
    }

    fn signals(&self) -> Option<UnboundedSender<Signal>> {
        lock(&self.signals).clone()
    }

    fn slot(&self, key: PgKey) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        self.sweep(&mut slots, now);
        let slot = slots.entry(key).or_insert_with(|| {
            Arc::new(Slot {
                session: tokio::sync::Mutex::new(None),
                last_used: Mutex::new(now),
            })
        });
        *lock(&slot.last_used) = now;
        slot.clone()
    }

    /// Drops slots unused for [`IDLE_TTL`], at most once a minute.
    fn sweep(&self, slots: &mut HashMap<PgKey, Arc<Slot>>, now: Instant) {
        let mut last = lock(&self.last_sweep);
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        *last = Some(now);
        slots.retain(|_, s| now.duration_since(*lock(&s.last_used)) < IDLE_TTL);
    }

    pub fn release(&self, spec: &PostgresSpec, target: ProbeTarget) {
        if let Some(key) = spec.key(target) {
            lock(&self.slots).remove(&key);
        }
    }

    /// Drops the session of `old` when `new` would use another one (other credentials, TLS or
    /// database). A run still using it finishes on it; the next attempt logs in anew.
    pub fn replaced(&self, old: &PostgresSpec, new: &PostgresSpec, target: ProbeTarget) {
        if let Some(key) = old.key(target)
            && new.key(target).as_ref() != Some(&key)
        {
            lock(&self.slots).remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub(crate) async fn probe(
    pool: &PgPool,
    tls: &TlsCache,
    spec: &PostgresSpec,
    target: ProbeTarget,
) -> Attempt {
    let credentials = spec.credentials.as_ref().map_err(Clone::clone)?;
    match spec.connection {
        PgConnection::PerProbe => {
            let session = connect(tls, spec, credentials, target, None).await?;
            query(&session, spec.query())
                .await
                .map_err(QueryError::into_message)
            // Dropping the client ends the session (Terminate) and closes the socket.
        }
        PgConnection::Persistent => {
            let key = PgKey {
                target,
                db_name: spec.db_name.clone(),
                credentials: credentials.clone(),
                tls: spec.tls.clone(),
            };
            let slot = pool.slot(key);
            let mut cached = slot.session.lock().await;
            // Taken out while in use: if this attempt is cancelled (timeout), the session is
            // dropped with it and the next attempt reconnects instead of reusing a busy session.
            if let Some(session) = cached.take().filter(|s| !s.client.is_closed()) {
                match query(&session, spec.query()).await {
                    Ok(msg) => {
                        *cached = Some(session);
                        return Ok(msg);
                    }
                    Err(QueryError::Answer(msg)) => {
                        *cached = Some(session);
                        return Err(msg);
                    }
                    // The session died (server restart, idle kill, network): say nothing yet and
                    // try a fresh connection, so a healthy server is not reported failed.
                    Err(QueryError::Session(msg)) => {
                        tracing::debug!(%target, error = %msg, "persistent PostgreSQL session lost, reconnecting");
                    }
                }
            }
            let session = connect(tls, spec, credentials, target, pool.signals()).await?;
            match query(&session, spec.query()).await {
                Ok(msg) => {
                    *cached = Some(session);
                    Ok(msg)
                }
                Err(QueryError::Answer(msg)) => {
                    *cached = Some(session);
                    Err(msg)
                }
                Err(QueryError::Session(msg)) => Err(msg),
            }
        }
    }
}

/// Runs the query; cancels it on the server if this future is dropped before it answers.
async fn query(session: &Session, sql: &str) -> Result<String, QueryError> {
    let guard = CancelOnDrop::arm(session);
    let result = run_query(&session.client, sql).await;
    guard.disarm();
    result
}

/// Logs in. With `signals`, the end of the session that the client did not ask for (the server
/// closed it, or the connection broke) is sent there as a [`Signal`]; a session the client ends
/// (dropped: released, replaced, per-probe) ends cleanly and signals nothing.
async fn connect(
    tls: &TlsCache,
    spec: &PostgresSpec,
    credentials: &PgCredentials,
    target: ProbeTarget,
    signals: Option<UnboundedSender<Signal>>,
) -> Result<Session, String> {
    let db_name = spec
        .db_name
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or(&credentials.user);
    let mut config = tokio_postgres::Config::new();
    config
        .user(&credentials.user)
        .password(&credentials.password)
        .dbname(db_name)
        .application_name(APPLICATION_NAME)
        .ssl_mode(match spec.tls.mode {
            PgTlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            PgTlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    let stream = tcp::connect(target).await?;
    if spec.tls.mode == PgTlsMode::Disable {
        let (client, connection) = config
            .connect_raw(stream, NoTls)
            .await
            .map_err(|e| describe_pg(&e))?;
        tokio::spawn(watch_session(connection, target, signals.clone()));
        return Ok(Session {
            client,
            cancel: CancelCtx { target, tls: None },
        });
    }
    let key = TlsKey {
        verify: match spec.tls.mode {
            PgTlsMode::VerifyFull => Verify::Full,
            PgTlsMode::VerifyCa => Verify::ChainOnly,
            _ => Verify::None,
        },
        ca_pem: spec.tls.ca_pem.clone(),
        client_cert_pem: spec.tls.client_cert_pem.clone(),
        client_key_pem: spec.tls.client_key_pem.clone(),
        alpn: &[],
    };
    let client_config = tls.get(&key)?;
    let mut make = MakeRustlsConnect::new((*client_config).clone());
    let name = match spec.tls.server_name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => target.ip.to_string(),
    };
    let connector =
        <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(&mut make, &name)
            .map_err(|_| format!("tls: invalid server name {name:?}"))?;
    let (client, connection) = config
        .connect_raw(stream, connector)
        .await
        .map_err(|e| describe_pg(&e))?;
    tokio::spawn(watch_session(connection, target, signals.clone()));
    Ok(Session {
        client,
        cancel: CancelCtx {
            target,
            tls: Some((client_config, name)),
        },
    })
}

/// Drives a session's connection until it ends; an end the client did not ask for is a
/// [`Signal`] for `target`.
async fn watch_session<F>(
    connection: F,
    target: ProbeTarget,
    signals: Option<UnboundedSender<Signal>>,
) where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let closed_by_server = connection.await.is_err();
    if closed_by_server && let Some(tx) = signals {
        tracing::debug!(%target, "persistent PostgreSQL session closed by the server");
        let _ = tx.send(Signal { target });
    }
}

enum QueryError {
    /// The server answered (false, no rows, SQL error): the session is fine.
    Answer(String),
    /// The session is unusable.
    Session(String),
}

impl QueryError {
    fn into_message(self) -> String {
        match self {
            QueryError::Answer(m) | QueryError::Session(m) => m,
        }
    }
}

async fn run_query(client: &Client, query: &str) -> Result<String, QueryError> {
    let messages = client.simple_query(query).await.map_err(|e| {
        let fatal = e
            .as_db_error()
            .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"));
        if e.as_db_error().is_some() && !fatal {
            QueryError::Answer(format!("query failed: {}", describe_pg(&e)))
        } else {
            QueryError::Session(describe_pg(&e))
        }
    })?;
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let Some(row) = row else {
        return Err(QueryError::Answer("query returned no rows".to_string()));
    };
    match row.try_get(0) {
        Ok(Some(value)) => match truthiness(value) {
            Some(true) => Ok("query returned true".to_string()),
            Some(false) => Err(QueryError::Answer("query returned false".to_string())),
            None => Err(QueryError::Answer(format!(
                "query returned {:?}, not a boolean",
                truncate(value, 64)
            ))),
        },
        Ok(None) => Err(QueryError::Answer("query returned NULL".to_string())),
        Err(_) => Err(QueryError::Answer("query returned no columns".to_string())),
    }
}

/// Deckhouse-compatible boolean reading of a text value.
pub fn truthiness(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "1" | "on" => Some(true),
        "f" | "false" | "n" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    if e.is_closed() {
        return "connection closed".to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => {
            let inner = describe_error(cause);
            if inner.starts_with("tls:") {
                inner
            } else {
                format!("{e}: {inner}")
            }
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_values() {
        for v in ["t", "TRUE", "y", "yes", "1", "on", " true "] {
            assert_eq!(truthiness(v), Some(true), "{v}");
        }
        for v in ["f", "false", "n", "no", "0", "off"] {
            assert_eq!(truthiness(v), Some(false), "{v}");
        }
        assert_eq!(truthiness("maybe"), None);
        assert_eq!(truthiness("2"), None);
    }

    fn spec(password: &str) -> PostgresSpec {
        PostgresSpec::new(Ok(PgCredentials {
            user: "probe".into(),
            password: password.into(),
        }))
    }

    #[test]
    fn new_credentials_drop_the_old_session_and_a_new_query_keeps_it() {
        let pool = PgPool::default();
        let target = ProbeTarget::new("10.0.0.1".parse().unwrap(), 5432);
        let old = spec("old");
        pool.slot(old.key(target).unwrap());
        let query = PostgresSpec {
            query: "select pg_is_in_recovery() = false".into(),
            ..old.clone()
        };
        assert!(!old.same_but_credentials(&query));
        pool.replaced(&old, &query, target);
        assert_eq!(pool.len(), 1, "same session settings: kept");
        let rotated = spec("new");
        assert!(old.same_but_credentials(&rotated));
        pool.replaced(&old, &rotated, target);
        assert_eq!(pool.len(), 0, "made with the old password: dropped");
        let mut cert = spec("old");
        cert.tls.client_cert_pem = Some("CERT".into());
        assert!(old.same_but_credentials(&cert));
        pool.slot(old.key(target).unwrap());
        pool.replaced(&old, &cert, target);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn secrets_do_not_leak_into_debug() {
        let c = PgCredentials {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let t = PgTls {
            client_key_pem: Some("KEYDATA".into()),
            ..Default::default()
        };
        assert!(!format!("{t:?}").contains("KEYDATA"));
    }
}
