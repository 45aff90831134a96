//! From Kubernetes objects to the probe engine: a pod's facts ([`PodInfo`]), and a v1beta1 probe
//! planned against one pod ([`plan_probe`]): the engine spec, the pod IP and port, or a reason
//! why it fails without running (a port name the pod doesn't have, a missing sub-object).
//!
//! Pure: no I/O. Secrets are looked up through [`SecretState`]s the caller keeps.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use swh_api::defaults;
use swh_api::v1beta1::{self, Healthcheck, Probe, ProbeMode};

use crate::probe::{
    GrpcSpec, HttpMethod, HttpScheme, HttpSpec, PgConnection, PgCredentials, PgTls, PgTlsMode,
    PostgresSpec, ProbeKind, ProbeSpec, ProbeTarget, StatusRange,
};

/// A container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPortInfo {
    pub name: Option<String>,
    pub port: i32,
    /// `TCP` unless the pod says otherwise.
    pub protocol: String,
}

/// What the agent needs to know about one pod on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` in order (the first is the primary), or `status.podIP`.
    pub ips: Vec<IpAddr>,
    /// Phase `Succeeded` or `Failed`: never published (its IP may already be reused).
    pub terminal: bool,
    /// Condition `Ready` is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `metadata.creationTimestamp`: initial delays are measured from it (Deckhouse semantics).
    pub created: Option<SystemTime>,
    pub ports: Vec<ContainerPortInfo>,
}

impl PodInfo {
    /// `None` for a pod without a namespace or name (never from the API server).
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let namespace = pod.metadata.namespace.clone()?;
        let name = pod.metadata.name.clone()?;
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let mut ports = Vec::new();
        if let Some(spec) = pod.spec.as_ref() {
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for c in containers {
                for p in c.ports.iter().flatten() {
                    ports.push(ContainerPortInfo {
                        name: p.name.clone(),
                        port: p.container_port,
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    });
                }
            }
        }
        Some(PodInfo {
            namespace,
            name,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ips,
            terminal: matches!(phase, "Succeeded" | "Failed"),
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| SystemTime::from(t.0)),
            ports,
        })
    }

    /// Whether the pod can be probed and published at all: it has an IP and is not finished.
    pub fn eligible(&self) -> bool {
        !self.ips.is_empty() && !self.terminal
    }

    /// The address probes go to.
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }

    /// The pod's address of one family, if it has one.
    pub fn ip_of(&self, family: Family) -> Option<IpAddr> {
        self.ips
            .iter()
            .copied()
            .find(|ip| Family::of(*ip) == family)
    }

    /// Resolves a port: a number (1..65535), or the name of a container port with `protocol`
    /// (a numeric string is taken as a number, like the kubelet does).
    pub fn resolve_port(&self, port: &IntOrString, protocol: &str) -> Result<u16, String> {
        match port {
            IntOrString::Int(n) => valid_port(*n),
            IntOrString::String(name) => {
                if let Some(p) = self
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()) && p.protocol == protocol)
                {
                    return valid_port(p.port);
                }
                match name.parse::<i32>() {
                    Ok(n) => valid_port(n),
                    Err(_) => Err(format!("port name {name} not found in pod")),
                }
            }
        }
    }
}

fn valid_port(n: i32) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {n} is out of range 1-65535"))
}

/// Address family of an EndpointSlice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// `addressType` of the slice: `IPv4` or `IPv6`.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// Slice name suffix: `ipv4` or `ipv6`.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    pub fn from_address_type(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// The families an SWH publishes for a pod: `spec.ipFamilies` when set (both with a dual-stack
/// policy), both with a dual-stack policy, else the family of the pod's primary IP.
pub fn families_for(spec: &v1beta1::ServiceWithHealthchecksSpec, pod: &PodInfo) -> Vec<Family> {
    let dual = matches!(
        spec.ip_family_policy.as_deref(),
        Some("PreferDualStack" | "RequireDualStack")
    );
    let mut out: Vec<Family> = Vec::new();
    if let Some(list) = spec.ip_families.as_ref().filter(|l| !l.is_empty()) {
        for f in list.iter().filter_map(|f| Family::from_address_type(f)) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if dual {
            for f in [Family::V4, Family::V6] {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    } else if dual {
        out = vec![Family::V4, Family::V6];
    } else if let Some(ip) = pod.primary_ip() {
        out.push(Family::of(ip));
    }
    out
}

/// What the agent knows of a Secret a probe names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// Not fetched yet: the probe is not scheduled until it is.
    Pending,
    /// The Secret does not exist.
    Missing,
    /// It could not be read (e.g. forbidden); the text says why.
    Error(String),
    /// Its decoded data.
    Present(BTreeMap<String, Vec<u8>>),
}

impl SecretState {
    pub fn from_secret(secret: &Secret) -> SecretState {
        SecretState::Present(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
        )
    }
}

/// How a probe runs against one pod (a short-lived value, never stored).
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ProbePlan {
    /// Schedule it.
    Run {
        spec: ProbeSpec,
        target: ProbeTarget,
    },
    /// It can't run against this pod; it is failing with this reason.
    Fail(String),
    /// Waiting for a Secret to be fetched (state Unknown, not scheduled yet).
    Pending,
}

/// The Secret a probe needs, if any.
pub fn secret_name(probe: &Probe) -> Option<&str> {
    match probe.mode {
        ProbeMode::PostgreSql => probe
            .postgre_sql
            .as_ref()?
            .auth_secret_name
            .as_deref()
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

fn secs(n: i32, min: i32) -> Duration {
    Duration::from_secs(u64::try_from(n.max(min)).unwrap_or(0))
}

/// Plans `probe` of an SWH (healthcheck `hc`) against `pod`. `secret` is the state of the
/// Secret the probe names (ignored when it names none).
pub fn plan_probe(
    hc: &Healthcheck,
    probe: &Probe,
    pod: &PodInfo,
    secret: Option<&SecretState>,
) -> ProbePlan {
    let Some(ip) = pod.primary_ip() else {
        return ProbePlan::Fail("pod has no IP".to_string());
    };
    let missing = || {
        ProbePlan::Fail(format!(
            "mode is {} but field {} is missing",
            probe.mode,
            probe.mode.field()
        ))
    };
    let (port, kind) = match probe.mode {
        ProbeMode::Tcp => match probe.tcp.as_ref() {
            Some(t) => (&t.port, ProbeKind::Tcp),
            None => return missing(),
        },
        ProbeMode::Http => match probe.http.as_ref() {
            Some(h) => (&h.port, ProbeKind::Http(http_spec(h))),
            None => return missing(),
        },
        ProbeMode::Grpc => match probe.grpc.as_ref() {
            Some(g) => (
                &g.port,
                ProbeKind::Grpc(GrpcSpec {
                    service: g.service.clone().filter(|s| !s.is_empty()),
                }),
            ),
            None => return missing(),
        },
        ProbeMode::PostgreSql => match probe.postgre_sql.as_ref() {
            Some(p) => {
                let state = match secret_name(probe) {
                    None => None,
                    Some(_) => match secret {
                        None | Some(SecretState::Pending) => return ProbePlan::Pending,
                        Some(s) => Some(s),
                    },
                };
                (&p.port, ProbeKind::Postgres(postgres_spec(p, state)))
            }
            None => return missing(),
        },
    };
    let port = match pod.resolve_port(port, "TCP") {
        Ok(p) => p,
        Err(reason) => return ProbePlan::Fail(reason),
    };
    let spec = ProbeSpec {
        name: probe.name.clone(),
        kind,
        timeout: secs(defaults::effective_timeout_seconds(probe), 1),
        period: secs(defaults::effective_period_seconds(hc, probe), 1),
        initial_delay: secs(defaults::effective_initial_delay_seconds(hc, probe), 0),
        success_threshold: u32::try_from(defaults::effective_success_threshold(probe).max(1))
            .unwrap_or(1),
        failure_threshold: u32::try_from(defaults::effective_failure_threshold(probe).max(1))
            .unwrap_or(1),
        transition_period: defaults::effective_transition_period_seconds(hc, probe)
            .map(|t| secs(t, 1)),
    };
    ProbePlan::Run {
        spec,
        target: ProbeTarget::new(ip, port),
    }
}

fn http_spec(h: &v1beta1::HttpProbe) -> HttpSpec {
    let expected_statuses = h
        .expected_statuses
        .iter()
        .flatten()
        .filter_map(|s| swh_api::validation::parse_status_range(s).ok())
        .map(|(from, to)| StatusRange::new(from, to))
        .collect();
    HttpSpec {
        scheme: match h.scheme {
            Some(v1beta1::HttpScheme::Https) => HttpScheme::Https,
            _ => HttpScheme::Http,
        },
        method: match h.method {
            Some(v1beta1::HttpMethod::Head) => HttpMethod::Head,
            Some(v1beta1::HttpMethod::Put) => HttpMethod::Put,
            Some(v1beta1::HttpMethod::Post) => HttpMethod::Post,
            Some(v1beta1::HttpMethod::Get) | None => HttpMethod::Get,
        },
        path: h.effective_path().to_string(),
        host: h.host.clone().filter(|s| !s.is_empty()),
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|hh| (hh.name.clone(), hh.value.clone()))
            .collect(),
        expected_statuses,
        body_contains: h.body_contains.clone().filter(|s| !s.is_empty()),
        ca_pem: h.ca_cert.clone().filter(|s| !s.trim().is_empty()),
        insecure_skip_verify: h.insecure_skip_tls_verify.unwrap_or(false),
    }
}

/// Deckhouse `tlsMode` names; anything unknown is `Require` (the Deckhouse default).
fn tls_mode_from_secret(s: &str) -> PgTlsMode {
    match s.trim() {
        "Disabled" => PgTlsMode::Disable,
        "VerifyCA" => PgTlsMode::VerifyCa,
        "VerifyAll" => PgTlsMode::VerifyFull,
        _ => PgTlsMode::Require,
    }
}

fn tls_mode(m: v1beta1::PgTlsMode) -> PgTlsMode {
    match m {
        v1beta1::PgTlsMode::Disabled => PgTlsMode::Disable,
        v1beta1::PgTlsMode::SkipVerification => PgTlsMode::Require,
        v1beta1::PgTlsMode::VerifyCa => PgTlsMode::VerifyCa,
        v1beta1::PgTlsMode::VerifyAll => PgTlsMode::VerifyFull,
    }
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<Result<String, String>> {
    data.get(key)
        .map(|v| String::from_utf8(v.clone()).map_err(|_| format!("key {key} is not valid UTF-8")))
}

/// Builds the PostgreSQL spec. TLS: the probe's `tls` wins over the Secret's `tlsMode`/`caCert`;
/// with neither, TLS is used when the server offers it (libpq's `prefer`).
fn postgres_spec(p: &v1beta1::PostgreSqlProbe, secret: Option<&SecretState>) -> PostgresSpec {
    let name = p.auth_secret_name.as_deref().unwrap_or_default();
    let mut tls = PgTls {
        mode: PgTlsMode::Prefer,
        ..Default::default()
    };
    let credentials = match secret {
        None => Err(
            "authSecretName is not set: a Secret with keys user and password is needed".to_string(),
        ),
        Some(SecretState::Pending) => Err(format!("secret {name} not loaded yet")),
        Some(SecretState::Missing) => Err(format!("secret {name} not found")),
        Some(SecretState::Error(e)) => Err(format!("secret {name}: {e}")),
        Some(SecretState::Present(data)) => (|| {
            let get = |key: &str| -> Result<Option<String>, String> {
                text(data, key)
                    .transpose()
                    .map_err(|e| format!("secret {name}: {e}"))
            };
            let user = get("user")?.ok_or_else(|| format!("secret {name} has no key user"))?;
            let password =
                get("password")?.ok_or_else(|| format!("secret {name} has no key password"))?;
            if let Some(mode) = get("tlsMode")? {
                tls.mode = tls_mode_from_secret(&mode);
            }
            tls.ca_pem = get("caCert")?.filter(|s| !s.trim().is_empty());
            tls.client_cert_pem = get("clientCert")?.filter(|s| !s.trim().is_empty());
            tls.client_key_pem = get("clientKey")?.filter(|s| !s.trim().is_empty());
            Ok(PgCredentials { user, password })
        })(),
    };
    if let Some(t) = p.tls.as_ref() {
        if let Some(m) = t.mode {
            tls.mode = tls_mode(m);
        }
        if let Some(ca) = t.ca_cert.as_ref().filter(|s| !s.trim().is_empty()) {
            tls.ca_pem = Some(ca.clone());
        }
        tls.server_name = t.server_name.clone().filter(|s| !s.is_empty());
    }
    PostgresSpec {
        db_name: p.db_name.clone().filter(|s| !s.is_empty()),
        query: p.effective_query().to_string(),
        connection: match p.connection {
            Some(v1beta1::PgConnection::PerProbe) => PgConnection::PerProbe,
            _ => PgConnection::Persistent,
        },
        tls,
        credentials,
    }
}

/// Metric label of a probe mode: `tcp`, `http`, `postgresql`, `grpc`.
pub fn mode_label(kind: &ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Tcp => "tcp",
        ProbeKind::Http(_) => "http",
        ProbeKind::Postgres(_) => "postgresql",
        ProbeKind::Grpc(_) => "grpc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodInfo {
        PodInfo {
            namespace: "db".into(),
            name: "pg-0".into(),
            uid: "u".into(),
            labels: BTreeMap::new(),
            ips: vec![IpAddr::from([10, 0, 0, 5])],
            terminal: false,
            ready: true,
            terminating: false,
            created: None,
            ports: Vec::new(),
        }
    }

    fn tcp_probe(period: Option<i32>, transition: Option<i32>) -> Probe {
        Probe {
            name: "tcp".into(),
            mode: ProbeMode::Tcp,
            period_seconds: period,
            transition_period_seconds: transition,
            tcp: Some(v1beta1::TcpProbe {
                port: IntOrString::Int(5432),
            }),
            ..Default::default()
        }
    }

    fn transition_of(hc: &Healthcheck, probe: &Probe) -> Option<Duration> {
        match plan_probe(hc, probe, &pod(), None) {
            ProbePlan::Run { spec, .. } => spec.transition_period,
            other => panic!("not planned to run: {other:?}"),
        }
    }

    #[test]
    fn transition_period_is_planned_only_when_set() {
        let hc = Healthcheck {
            period_seconds: Some(10),
            ..Default::default()
        };
        assert_eq!(transition_of(&hc, &tcp_probe(None, None)), None);
        assert_eq!(
            transition_of(&hc, &tcp_probe(None, Some(1))),
            Some(Duration::from_secs(1))
        );
        // Never longer than the probe's own period (validation denies it; the agent clamps).
        assert_eq!(
            transition_of(&hc, &tcp_probe(Some(3), Some(7))),
            Some(Duration::from_secs(3))
        );
    }
}
