//! The pod network: a network namespace of the harness's own, joined to the host namespace by
//! a veth pair, with host routes to an IPv4 and an IPv6 pod range. Pod IPs are /32 and /128
//! addresses on the namespace's loopback device; backends run inside the namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum PodNetError {
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("running `{cmd}`: {source}")]
    Exec {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pod IP allocator at {path}: {source}")]
    Allocator {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod range exhausted")]
    Exhausted,
}

/// Everything needed to find, use and remove one pod network. Serialisable so `make down`
/// can remove what `make up` made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodNetwork {
    /// Network namespace name.
    pub netns: String,
    /// Host side of the veth pair.
    pub host_if: String,
    pub host_v4: Ipv4Addr,
    pub peer_v4: Ipv4Addr,
    pub host_v6: Ipv6Addr,
    pub peer_v6: Ipv6Addr,
    /// Second octet of 10.X.0.0/16 and the matching fd00:10:X::/64.
    pub pod_range: u8,
    /// File holding the allocation counter.
    pub alloc_file: PathBuf,
}

pub(crate) fn run(cmd: &mut Command) -> Result<String, PodNetError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|source| PodNetError::Exec {
        cmd: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(PodNetError::Command {
            cmd: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, PodNetError> {
    run(Command::new("ip").args(args))
}

impl PodNetwork {
    /// Creates the namespace `swh-<tag>`, veth `swh<tag>h`/`swh<tag>p` (tag ≤ 8 chars), the
    /// transfer net 10.250.<link>.0/30 and fd00:250:<link>::/64, and routes to
    /// 10.<pod_range>.0.0/16 and fd00:10:<pod_range>::/64.
    pub fn create(
        tag: &str,
        link: u8,
        pod_range: u8,
        state_dir: &Path,
    ) -> Result<Self, PodNetError> {
        let net = PodNetwork {
            netns: format!("swh-{tag}"),
            host_if: format!("swh{tag}h"),
            host_v4: Ipv4Addr::new(10, 250, link, 1),
            peer_v4: Ipv4Addr::new(10, 250, link, 2),
            host_v6: format!("fd00:250:{link:x}::1")
                .parse()
                .unwrap_or(Ipv6Addr::LOCALHOST),
            peer_v6: format!("fd00:250:{link:x}::2")
                .parse()
                .unwrap_or(Ipv6Addr::LOCALHOST),
            pod_range,
            alloc_file: state_dir.join("pod-ip-counter"),
        };
        // Leftovers of an earlier crashed run with the same tag go first.
        net.destroy();
        let result = net.build(tag);
        if result.is_err() {
            net.destroy();
        }
        result.map(|()| net)
    }

    fn build(&self, tag: &str) -> Result<(), PodNetError> {
        let peer_if = format!("swh{tag}p");
        let ns = self.netns.as_str();
        let (h4, p4, h6, p6) = (
            format!("{}/30", self.host_v4),
            format!("{}/30", self.peer_v4),
            format!("{}/64", self.host_v6),
            format!("{}/64", self.peer_v6),
        );
        ip(&["netns", "add", ns])?;
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer_if,
        ])?;
        ip(&["link", "set", &peer_if, "netns", ns])?;
        ip(&["addr", "add", &h4, "dev", &self.host_if])?;
        ip(&["-6", "addr", "add", &h6, "dev", &self.host_if, "nodad"])?;
        ip(&["link", "set", &self.host_if, "up"])?;
        let inside: [&[&str]; 6] = [
            &["addr", "add", &p4, "dev", &peer_if],
            &["-6", "addr", "add", &p6, "dev", &peer_if, "nodad"],
            &["link", "set", &peer_if, "up"],
            &["link", "set", "lo", "up"],
            &["route", "add", "default", "via", &self.host_v4.to_string()],
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &self.host_v6.to_string(),
            ],
        ];
        for args in inside {
            let mut full = vec!["netns", "exec", ns, "ip"];
            full.extend_from_slice(args);
            ip(&full)?;
        }
        ip(&[
            "route",
            "add",
            &self.v4_cidr(),
            "via",
            &self.peer_v4.to_string(),
        ])?;
        ip(&[
            "-6",
            "route",
            "add",
            &self.v6_cidr(),
            "via",
            &self.peer_v6.to_string(),
        ])?;
        std::fs::write(&self.alloc_file, "0").map_err(|source| PodNetError::Allocator {
            path: self.alloc_file.clone(),
            source,
        })?;
        Ok(())
    }

    pub fn v4_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.pod_range)
    }
    pub fn v6_cidr(&self) -> String {
        format!("fd00:10:{}::/64", self.pod_range)
    }

    /// The third group of the IPv6 pod range: the decimal digits of `pod_range` read as hex,
    /// so range 244 is fd00:10:244::/64.
    fn v6_group(&self) -> u16 {
        u16::from_str_radix(&self.pod_range.to_string(), 16).unwrap_or(0)
    }

    /// Removes routes, veth and namespace. Ignores what is already gone.
    pub fn destroy(&self) {
        let _ = ip(&["route", "del", &self.v4_cidr()]);
        let _ = ip(&["-6", "route", "del", &self.v6_cidr()]);
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.netns]);
    }

    /// Allocates a fresh (IPv4, IPv6) pod address pair and adds both to the namespace.
    /// Safe across processes (the counter file is locked).
    pub fn alloc_pod_ips(&self) -> Result<(IpAddr, IpAddr), PodNetError> {
        let n = self.next_index()?;
        let (hi, lo) = ((n / 250) as u8, (n % 250 + 2) as u8);
        if n >= 250 * 250 {
            return Err(PodNetError::Exhausted);
        }
        let v4 = IpAddr::V4(Ipv4Addr::new(10, self.pod_range, hi, lo));
        let v6: IpAddr = IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0x10,
            self.v6_group(),
            0,
            0,
            0,
            u16::from(hi),
            u16::from(lo),
        ));
        self.add_addr(v4)?;
        self.add_addr(v6)?;
        Ok((v4, v6))
    }

    /// Adds one address to the namespace's loopback device.
    pub fn add_addr(&self, addr: IpAddr) -> Result<(), PodNetError> {
        let cidr = match addr {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        };
        let mut args = vec!["netns", "exec", &self.netns, "ip"];
        if addr.is_ipv6() {
            args.push("-6");
        }
        args.extend(["addr", "add", &cidr, "dev", "lo"]);
        ip(&args).map(|_| ()).or_else(|e| match &e {
            PodNetError::Command { stderr, .. } if stderr.contains("File exists") => Ok(()),
            _ => Err(e),
        })
    }

    /// Removes one address from the namespace.
    pub fn del_addr(&self, addr: IpAddr) -> Result<(), PodNetError> {
        let cidr = match addr {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        };
        ip(&[
            "netns",
            "exec",
            &self.netns,
            "ip",
            "addr",
            "del",
            &cidr,
            "dev",
            "lo",
        ])
        .map(|_| ())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns]).arg(program);
        c
    }

    fn next_index(&self) -> Result<u32, PodNetError> {
        use std::io::{Read, Seek, Write};
        let err = |source| PodNetError::Allocator {
            path: self.alloc_file.clone(),
            source,
        };
        let mut f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.alloc_file)
            .map_err(err)?;
        f.lock().map_err(err)?;
        let mut s = String::new();
        f.read_to_string(&mut s).map_err(err)?;
        let n: u32 = s.trim().parse().unwrap_or(0);
        f.set_len(0).map_err(err)?;
        f.rewind().map_err(err)?;
        f.write_all((n + 1).to_string().as_bytes()).map_err(err)?;
        f.unlock().map_err(err)?;
        Ok(n)
    }

    /// Whether the namespace and host interface still exist (for teardown checks).
    pub fn exists(&self) -> (bool, bool) {
        let ns = ip(&["netns", "list"])
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().next() == Some(&self.netns))
            })
            .unwrap_or(false);
        let link = ip(&["link", "show", &self.host_if]).is_ok();
        (ns, link)
    }
}
