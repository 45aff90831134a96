//! PostgreSQL probe against a real server (Debian's packages), started here as the `postgres`
//! user on 127.0.0.1 with SCRAM passwords and TLS. If the server binaries are missing, the tests
//! fail (they are never skipped): install them with `apt-get install -y postgresql`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swh_agent::probe::{
    PgConnection, PgCredentials, PgTls, PgTlsMode, PostgresSpec, ProbeKind, ProbeOutcome,
    ProbeSpec, ProbeTarget, Prober,
};

const USER: &str = "probe";
const PASSWORD: &str = "probe-secret";
const SUPERUSER_PASSWORD: &str = "super-secret";

struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    pki: common::Pki,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("postgres").exists() && b.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.pop() {
        Some(b) => b,
        None => panic!(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/postgres): \
             run `apt-get update && apt-get install -y postgresql` to run these tests"
        ),
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

impl PgServer {
    fn start() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "swh-agent-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let pki = common::pki(&["db.example", "127.0.0.1"]);
        std::fs::write(dir.join("pwfile"), SUPERUSER_PASSWORD).unwrap();
        std::fs::write(dir.join("server.crt"), &pki.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &pki.key_pem).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir));
        run(Command::new("chmod")
            .arg("0600")
            .arg(dir.join("server.key")));
        run(as_postgres(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display())));
        let port = common::closed_port("127.0.0.1");
        let server = Self {
            bin,
            dir,
            port,
            pki,
        };
        server.pg_ctl_start();
        server.admin(&format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"));
        server.admin(&format!("CREATE DATABASE {USER} OWNER {USER}"));
        server
    }

    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
             -c ssl_cert_file={} -c ssl_key_file={}",
            self.port,
            self.dir.join("sock").display(),
            self.dir.join("server.crt").display(),
            self.dir.join("server.key").display()
        );
        run(as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"]));
    }

    fn pg_ctl_stop(&self) {
        run(as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "fast", "stop"]));
    }

    /// Runs SQL as the superuser over the unix socket (psql is in the same bin dir).
    fn admin(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(self.dir.join("sock"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .arg("postgres")
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn target(&self) -> ProbeTarget {
        ProbeTarget::new("127.0.0.1".parse().unwrap(), self.port)
    }

    fn probe_backends(&self) -> usize {
        self.admin("select count(*) from pg_stat_activity where application_name = 'swh-agent'")
            .parse()
            .unwrap()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn creds(password: &str) -> Result<PgCredentials, String> {
    Ok(PgCredentials {
        user: USER.into(),
        password: password.into(),
    })
}

fn pg(query: &str) -> PostgresSpec {
    let mut p = PostgresSpec::new(creds(PASSWORD));
    p.query = query.into();
    p
}

fn spec(p: PostgresSpec) -> ProbeSpec {
    ProbeSpec::new("db", ProbeKind::Postgres(p))
}

async fn probe(prober: &Prober, srv: &PgServer, p: PostgresSpec) -> ProbeOutcome {
    prober.probe(&spec(p), srv.target()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queries_credentials_tls_and_timeouts() {
    let srv = PgServer::start();
    let prober = Prober::new();

    // Default `select 1`, database named like the user, TLS `Require` (the Deckhouse default).
    let out = probe(&prober, &srv, PostgresSpec::new(creds(PASSWORD))).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "query returned true");

    // Boolean-ish answers.
    for q in [
        "select true",
        "select 'yes'",
        "select 't'::text",
        "select 'ON'",
    ] {
        let out = probe(&prober, &srv, pg(q)).await;
        assert!(out.ok, "{q}: {out:?}");
    }
    let expect_fail = [
        ("select false", "query returned false"),
        ("select 0", "query returned false"),
        ("select null::bool", "query returned NULL"),
        ("select 1 where false", "query returned no rows"),
        ("select 'maybe'", "query returned \"maybe\", not a boolean"),
        (
            "select * from no_such_table",
            "query failed: relation \"no_such_table\" does not exist",
        ),
    ];
    for (q, msg) in expect_fail {
        let out = probe(&prober, &srv, pg(q)).await;
        assert!(!out.ok, "{q}: {out:?}");
        assert_eq!(out.message, msg, "{q}");
    }
    // A realistic role query.
    let out = probe(&prober, &srv, pg("select not pg_is_in_recovery()")).await;
    assert!(out.ok, "{out:?}");

    // All of the above went through one persistent session.
    assert_eq!(srv.probe_backends(), 1);
    assert_eq!(prober.persistent_connections(), 1);

    // Credentials: wrong password, and a resolution error from the caller.
    let mut p = pg("select 1");
    p.credentials = creds("wrong");
    let out = probe(&prober, &srv, p).await;
    assert!(!out.ok);
    assert_eq!(
        out.message,
        format!("password authentication failed for user \"{USER}\"")
    );
    let mut p = pg("select 1");
    p.credentials = Err("secret cred-secret not found".into());
    let out = probe(&prober, &srv, p).await;
    assert!(!out.ok);
    assert_eq!(out.message, "secret cred-secret not found");

    // Explicit database that doesn't exist.
    let mut p = pg("select 1");
    p.db_name = Some("nope".into());
    let out = probe(&prober, &srv, p).await;
    assert!(!out.ok);
    assert_eq!(out.message, "database \"nope\" does not exist");

    // Timeout, then the persistent slot recovers on the next probe.
    let mut s = spec(pg("select pg_sleep(5) is not null"));
    s.timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let out = prober.probe(&s, srv.target()).await;
    assert!(!out.ok);
    assert_eq!(out.message, "timeout after 1s");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The abandoned query was cancelled on the server, not left running.
    let mut still_running = String::new();
    for _ in 0..20 {
        still_running = srv.admin(
            "select count(*) from pg_stat_activity \
             where query like '%pg_sleep(5)%' and state = 'active' and pid <> pg_backend_pid()",
        );
        if still_running == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(still_running, "0", "timed-out query still running");
    let out = probe(&prober, &srv, pg("select 1")).await;
    assert!(out.ok, "after a timeout: {out:?}");

    // TLS modes.
    let tls = |mode, ca: bool, name: Option<&str>| PgTls {
        mode,
        ca_pem: ca.then(|| srv.pki.ca_pem.clone()),
        server_name: name.map(str::to_string),
        ..Default::default()
    };
    let ok_cases = [
        tls(PgTlsMode::Disable, false, None),
        tls(PgTlsMode::Prefer, false, None),
        tls(PgTlsMode::Require, false, None),
        tls(PgTlsMode::VerifyCa, true, Some("wrong.example")),
        tls(PgTlsMode::VerifyFull, true, Some("db.example")),
        tls(PgTlsMode::VerifyFull, true, None), // the certificate names 127.0.0.1
    ];
    for t in ok_cases {
        let mut p = pg("select 1");
        p.tls = t.clone();
        let out = probe(&prober, &srv, p).await;
        assert!(out.ok, "{t:?}: {out:?}");
    }
    let mut p = pg("select ssl from pg_stat_ssl where pid = pg_backend_pid()");
    p.tls = tls(PgTlsMode::VerifyFull, true, Some("db.example"));
    assert!(probe(&prober, &srv, p).await.ok, "session is encrypted");
    let mut p = pg("select 1");
    p.tls = tls(PgTlsMode::VerifyFull, true, Some("wrong.example"));
    let out = probe(&prober, &srv, p).await;
    assert!(!out.ok);
    assert!(
        out.message.starts_with("tls: certificate verify failed:")
            && out.message.contains("wrong.example"),
        "{out:?}"
    );
    let mut p = pg("select 1");
    p.tls = tls(PgTlsMode::VerifyFull, false, Some("db.example"));
    let out = probe(&prober, &srv, p).await;
    assert!(!out.ok);
    assert!(out.message.contains("unknown issuer"), "{out:?}");

    // Per-probe connections leave nothing behind.
    let before = srv.probe_backends();
    let mut p = pg("select 1");
    p.connection = PgConnection::PerProbe;
    p.db_name = Some(USER.into());
    for _ in 0..3 {
        let out = probe(&prober, &srv, p.clone()).await;
        assert!(out.ok, "{out:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.probe_backends(), before);

    // A TCP probe on the PostgreSQL port logs nothing (no payload is written).
    let tcp = ProbeSpec::new("tcp", ProbeKind::Tcp);
    assert!(prober.probe(&tcp, srv.target()).await.ok);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = srv.log();
    assert!(!log.contains("startup packet"), "{log}");

    // Releasing a probe closes its session.
    let p = pg("select 1");
    prober.release(&spec(p), srv.target());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(srv.probe_backends() < before, "session not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_connection_reconnects_after_restart() {
    let srv = PgServer::start();
    let prober = Prober::new();
    let p = pg("select 1");

    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok, "{out:?}");
    let pid_before =
        srv.admin("select pid from pg_stat_activity where application_name = 'swh-agent'");

    // Restart while idle: the cached session is dead, but the server is healthy again, so the
    // very next probe must pass (reconnect inside the same attempt, no spurious failure).
    srv.pg_ctl_stop();
    srv.pg_ctl_start();
    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok, "first probe after restart: {out:?}");
    let pid_after =
        srv.admin("select pid from pg_stat_activity where application_name = 'swh-agent'");
    assert_ne!(pid_before, pid_after, "a new session was opened");

    // Down: fails with a readable reason, every time.
    srv.pg_ctl_stop();
    for _ in 0..2 {
        let out = probe(&prober, &srv, p.clone()).await;
        assert!(!out.ok);
        assert!(out.message.contains("connection refused"), "{out:?}");
    }
    // Back up: passes on the first attempt.
    srv.pg_ctl_start();
    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok, "after coming back: {out:?}");
    assert_eq!(srv.probe_backends(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_closed_by_the_server_is_signalled() {
    let srv = PgServer::start();
    let prober = Prober::new();
    let (tx, mut signals) = tokio::sync::mpsc::unbounded_channel();
    prober.set_signals(tx);
    let p = pg("select 1");
    let quiet = |signals: &mut tokio::sync::mpsc::UnboundedReceiver<swh_agent::probe::Signal>| {
        assert!(signals.try_recv().is_err(), "no signal expected");
    };

    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok && !out.signal, "{out:?}");
    // Sessions the agent ends itself (released, per-probe) signal nothing.
    prober.release(&spec(p.clone()), srv.target());
    let per_probe = PostgresSpec {
        connection: PgConnection::PerProbe,
        ..pg("select 1")
    };
    let out = probe(&prober, &srv, per_probe).await;
    assert!(out.ok, "{out:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    quiet(&mut signals);

    // The server terminates the idle persistent session: signalled at once.
    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok, "{out:?}");
    srv.admin(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where application_name = 'swh-agent'",
    );
    let got = tokio::time::timeout(Duration::from_secs(5), signals.recv()).await;
    assert_eq!(
        got.ok().flatten().map(|s| s.target),
        Some(srv.target()),
        "signal for the terminated session"
    );
    quiet(&mut signals);

    // The server shuts down: signalled; the next probe is refused, itself a signal.
    let out = probe(&prober, &srv, p.clone()).await;
    assert!(out.ok && !out.signal, "reconnected: {out:?}");
    srv.pg_ctl_stop();
    let got = tokio::time::timeout(Duration::from_secs(5), signals.recv()).await;
    assert_eq!(got.ok().flatten().map(|s| s.target), Some(srv.target()));
    let out = probe(&prober, &srv, p.clone()).await;
    assert!(!out.ok && out.signal, "{out:?}");
    assert!(out.message.contains("connection refused"), "{out:?}");
}
