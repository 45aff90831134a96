//! Backends at pod IPs: the `swh-backend` test server (TCP and HTTP) and PostgreSQL, run inside
//! the pod network namespace and stopped by PID.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::podnet::PodNetwork;
use crate::process;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running `swh-backend` process; stopped on drop.
pub struct Backend {
    child: Option<Child>,
    args: Vec<String>,
    exe: PathBuf,
    netns: PodNetwork,
    log: PathBuf,
    wait_for: Vec<SocketAddr>,
}

/// What one `swh-backend` serves.
#[derive(Debug, Clone, Default)]
pub struct BackendSpec {
    pub tcp: Vec<SocketAddr>,
    /// HTTP listeners; each answers `http_status` on `http_path` and 404 elsewhere.
    pub http: Vec<SocketAddr>,
    pub http_path: String,
    pub http_status: u16,
}

impl Backend {
    /// Starts `exe` (the swh-backend binary) inside `net` and waits until every listener
    /// accepts a connection from the host namespace.
    pub fn start(
        exe: &Path,
        net: &PodNetwork,
        spec: &BackendSpec,
        log_dir: &Path,
    ) -> Result<Backend, BackendError> {
        let mut args = Vec::new();
        for a in &spec.tcp {
            args.push("--tcp".to_string());
            args.push(a.to_string());
        }
        for a in &spec.http {
            args.push("--http".to_string());
            args.push(a.to_string());
        }
        if !spec.http_path.is_empty() {
            args.push("--http-path".into());
            args.push(spec.http_path.clone());
        }
        if spec.http_status != 0 {
            args.push("--http-status".into());
            args.push(spec.http_status.to_string());
        }
        let first = spec
            .tcp
            .iter()
            .chain(&spec.http)
            .next()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let log = log_dir.join(format!(
            "backend-{}.log",
            first.replace([':', '[', ']'], "_")
        ));
        let mut b = Backend {
            child: None,
            args,
            exe: exe.to_path_buf(),
            netns: net.clone(),
            log,
            wait_for: spec.tcp.iter().chain(&spec.http).copied().collect(),
        };
        b.restart()?;
        Ok(b)
    }

    /// Stops the process; connections to its addresses are then refused.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            process::stop(c.id(), Some(&mut c), Duration::from_secs(5));
        }
    }

    /// Starts it again (after `stop`) and waits for its listeners.
    pub fn restart(&mut self) -> Result<(), BackendError> {
        self.stop();
        let mut cmd = self.netns.command(&self.exe);
        cmd.args(&self.args);
        let child = process::spawn_logged("swh-backend", cmd, &self.log)?;
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in &self.wait_for {
            loop {
                if std::net::TcpStream::connect_timeout(addr, Duration::from_millis(300)).is_ok() {
                    break;
                }
                if !process::alive(pid) || Instant::now() > deadline {
                    return Err(BackendError::Failed {
                        what: format!("backend on {addr}"),
                        detail: std::fs::read_to_string(&self.log).unwrap_or_default(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves the process running past this handle (for `make demo`); returns its PID and log.
    pub fn detach(mut self) -> Option<(u32, PathBuf)> {
        let pid = self.child.take().map(|c| c.id())?;
        Some((pid, self.log.clone()))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding PostgreSQL's server binaries (Debian layout), if installed.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A PostgreSQL server at a pod IP, run as the `postgres` user inside the pod namespace.
pub struct Postgres {
    pub addr: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    bin: PathBuf,
    net: PodNetwork,
    running: bool,
}

impl Postgres {
    fn pg(net: &PodNetwork, bin: &Path, tool: &str) -> Command {
        let mut c = net.command("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    }

    fn run(mut cmd: Command, what: &str) -> Result<(), BackendError> {
        let out = cmd.output().map_err(|source| BackendError::Io {
            what: what.into(),
            source,
        })?;
        if !out.status.success() {
            return Err(BackendError::Failed {
                what: what.into(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    fn prepare_dir(dir: &Path) -> Result<(), BackendError> {
        std::fs::create_dir_all(dir).map_err(|source| BackendError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        Self::run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(dir);
                c
            },
            "chown to postgres",
        )
    }

    fn configure(dir: &Path, addr: IpAddr, port: u16) -> Result<(), BackendError> {
        use std::io::Write;
        let conf = dir.join("data/postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|source| BackendError::Io {
                what: format!("opening {}", conf.display()),
                source,
            })?;
        writeln!(
            f,
            "listen_addresses = '{addr}'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_wal_senders = 5\nwal_level = replica\nhot_standby = on",
            dir.join("sock").display()
        )
        .map_err(|source| BackendError::Io {
            what: "writing postgresql.conf".into(),
            source,
        })
    }

    /// Initialises and starts a primary with user `postgres` / `password` (scram-sha-256,
    /// replication allowed from the pod ranges).
    pub fn start_primary(
        net: &PodNetwork,
        dir: &Path,
        addr: IpAddr,
        port: u16,
        password: &str,
    ) -> Result<Postgres, BackendError> {
        let bin = postgres_bin_dir().ok_or_else(|| BackendError::Failed {
            what: "PostgreSQL".into(),
            detail: "no server binaries under /usr/lib/postgresql/*/bin (install Debian package postgresql; `make test` does)".into(),
        })?;
        Self::prepare_dir(dir)?;
        std::fs::create_dir_all(dir.join("sock")).ok();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, password).map_err(|source| BackendError::Io {
            what: "writing password file".into(),
            source,
        })?;
        Self::prepare_dir(dir)?;
        let mut init = Self::pg(net, &bin, "initdb");
        init.arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        Self::run(init, "initdb")?;
        Self::configure(dir, addr, port)?;
        let hba = dir.join("data/pg_hba.conf");
        let mut s = std::fs::read_to_string(&hba).unwrap_or_default();
        s.push_str("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\nhost replication all 0.0.0.0/0 scram-sha-256\nhost replication all ::/0 scram-sha-256\n");
        std::fs::write(&hba, s).map_err(|source| BackendError::Io {
            what: "writing pg_hba.conf".into(),
            source,
        })?;
        let mut pg = Postgres {
            addr,
            port,
            data_dir: dir.join("data"),
            bin,
            net: net.clone(),
            running: false,
        };
        pg.start()?;
        Ok(pg)
    }

    /// Clones `primary` with pg_basebackup into a streaming replica at `addr` and starts it.
    pub fn start_replica(
        primary: &Postgres,
        dir: &Path,
        addr: IpAddr,
        port: u16,
        password: &str,
    ) -> Result<Postgres, BackendError> {
        Self::prepare_dir(dir)?;
        std::fs::create_dir_all(dir.join("sock")).ok();
        Self::prepare_dir(dir)?;
        // runuser drops the caller's environment; `env` hands PGPASSWORD to pg_basebackup.
        let mut wrapped = primary.net.command("runuser");
        wrapped
            .args([
                "-u",
                "postgres",
                "--",
                "env",
                &format!("PGPASSWORD={password}"),
            ])
            .arg(primary.bin.join("pg_basebackup"));
        wrapped
            .args([
                "-h",
                &primary.addr.to_string(),
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-D",
            ])
            .arg(dir.join("data"));
        Self::run(wrapped, "pg_basebackup")?;
        Self::configure(dir, addr, port)?;
        let mut pg = Postgres {
            addr,
            port,
            data_dir: dir.join("data"),
            bin: primary.bin.clone(),
            net: primary.net.clone(),
            running: false,
        };
        pg.start()?;
        Ok(pg)
    }

    pub fn start(&mut self) -> Result<(), BackendError> {
        let mut c = Self::pg(&self.net, &self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.with_file_name("server.log"))
            .args(["-w", "-t", "60", "start"]);
        Self::run(c, "pg_ctl start")?;
        self.running = true;
        Ok(())
    }

    /// Fast shutdown.
    pub fn stop(&mut self) -> Result<(), BackendError> {
        if !self.running {
            return Ok(());
        }
        let mut c = Self::pg(&self.net, &self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        Self::run(c, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Leaves the server running past this handle (for `make demo`); returns the postmaster
    /// PID and the server log.
    pub fn detach(mut self) -> Option<(u32, PathBuf)> {
        let pidfile = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        let pid = pidfile.lines().next()?.trim().parse().ok()?;
        self.running = false;
        Some((pid, self.data_dir.with_file_name("server.log")))
    }

    /// Promotes a standby to primary.
    pub fn promote(&self) -> Result<(), BackendError> {
        let mut c = Self::pg(&self.net, &self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "promote"]);
        Self::run(c, "pg_ctl promote")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
