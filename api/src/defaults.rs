//! Deckhouse defaults. The same values are in the CRD schema (`default:`), so the API server
//! applies them too; [`apply`] fills them into objects that did not pass an API server (tests,
//! `kubectl swh migrate`), and the `effective_*` helpers give consumers the values in force.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{v1alpha1, v1beta1};

/// Default `healthcheck.initialDelaySeconds`.
pub const INITIAL_DELAY_SECONDS: i32 = 10;
/// Default `healthcheck.periodSeconds`.
pub const PERIOD_SECONDS: i32 = 10;
/// Default probe `timeoutSeconds`.
pub const TIMEOUT_SECONDS: i32 = 1;
/// Default probe `successThreshold`.
pub const SUCCESS_THRESHOLD: i32 = 1;
/// Default probe `failureThreshold`.
pub const FAILURE_THRESHOLD: i32 = 3;
/// Default PostgreSQL query.
pub const POSTGRES_QUERY: &str = "select 1";
/// Default Service type.
pub const SERVICE_TYPE: &str = "ClusterIP";
/// Default port protocol.
pub const PROTOCOL: &str = "TCP";
/// HTTP path used when none is given.
pub const HTTP_PATH: &str = "/";
/// Status codes accepted when `expectedStatuses` is empty (like the kubelet).
pub const DEFAULT_EXPECTED_STATUSES: (u16, u16) = (200, 399);

fn set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn service_defaults(
    type_: &mut Option<String>,
    ports: &mut Option<Vec<k8s_openapi::api::core::v1::ServicePort>>,
) {
    set(type_, SERVICE_TYPE.to_string());
    for p in ports.iter_mut().flatten() {
        set(&mut p.protocol, PROTOCOL.to_string());
        set(&mut p.target_port, IntOrString::Int(p.port));
    }
}

/// Fill every defaulted field of a v1beta1 spec (idempotent): type ClusterIP, port protocol TCP,
/// targetPort = port, initialDelaySeconds 10, periodSeconds 10, timeoutSeconds 1,
/// successThreshold 1, failureThreshold 3, scheme HTTP, method GET, query `select 1`,
/// connection Persistent. Per-probe period/delay overrides stay unset (see `effective_*`).
pub fn apply(spec: &mut v1beta1::ServiceWithHealthchecksSpec) {
    service_defaults(&mut spec.type_, &mut spec.ports);
    let Some(hc) = spec.healthcheck.as_mut() else {
        return;
    };
    set(&mut hc.initial_delay_seconds, INITIAL_DELAY_SECONDS);
    set(&mut hc.period_seconds, PERIOD_SECONDS);
    for p in hc.probes.iter_mut().flatten() {
        set(&mut p.timeout_seconds, TIMEOUT_SECONDS);
        set(&mut p.success_threshold, SUCCESS_THRESHOLD);
        set(&mut p.failure_threshold, FAILURE_THRESHOLD);
        if let Some(h) = p.http.as_mut() {
            set(&mut h.scheme, v1beta1::HttpScheme::Http);
            set(&mut h.method, v1beta1::HttpMethod::Get);
        }
        if let Some(pg) = p.postgre_sql.as_mut() {
            set(&mut pg.query, POSTGRES_QUERY.to_string());
            set(&mut pg.connection, v1beta1::PgConnection::Persistent);
        }
    }
}

/// Fill every defaulted field of a v1alpha1 spec (idempotent).
pub fn apply_v1alpha1(spec: &mut v1alpha1::ServiceWithHealthchecksSpec) {
    service_defaults(&mut spec.type_, &mut spec.ports);
    let Some(hc) = spec.healthcheck.as_mut() else {
        return;
    };
    set(&mut hc.initial_delay_seconds, INITIAL_DELAY_SECONDS);
    set(&mut hc.period_seconds, PERIOD_SECONDS);
    for p in hc.probes.iter_mut().flatten() {
        set(&mut p.timeout_seconds, TIMEOUT_SECONDS);
        set(&mut p.success_threshold, SUCCESS_THRESHOLD);
        set(&mut p.failure_threshold, FAILURE_THRESHOLD);
        if let Some(h) = p.http.as_mut() {
            set(&mut h.scheme, v1alpha1::HttpScheme::Http);
            set(&mut h.method, v1alpha1::HttpMethod::Get);
        }
        if let Some(pg) = p.postgre_sql.as_mut() {
            set(&mut pg.query, POSTGRES_QUERY.to_string());
        }
    }
}

/// Period in force for `probe`: its override, else the healthcheck's, else 10.
pub fn effective_period_seconds(hc: &v1beta1::Healthcheck, probe: &v1beta1::Probe) -> i32 {
    probe
        .period_seconds
        .or(hc.period_seconds)
        .unwrap_or(PERIOD_SECONDS)
}

/// Initial delay in force for `probe`: its override, else the healthcheck's, else 10.
pub fn effective_initial_delay_seconds(hc: &v1beta1::Healthcheck, probe: &v1beta1::Probe) -> i32 {
    probe
        .initial_delay_seconds
        .or(hc.initial_delay_seconds)
        .unwrap_or(INITIAL_DELAY_SECONDS)
}

/// Interval between probes while `probe`'s state is changing (`transitionPeriodSeconds`):
/// `None` when unset (fast transitions off: the period applies throughout).
pub fn effective_transition_period_seconds(
    hc: &v1beta1::Healthcheck,
    probe: &v1beta1::Probe,
) -> Option<i32> {
    let period = effective_period_seconds(hc, probe);
    probe
        .transition_period_seconds
        .map(|t| t.clamp(1, period.max(1)))
}

/// Timeout in force for `probe` (default 1).
pub fn effective_timeout_seconds(probe: &v1beta1::Probe) -> i32 {
    probe.timeout_seconds.unwrap_or(TIMEOUT_SECONDS)
}

/// Success threshold in force for `probe` (default 1).
pub fn effective_success_threshold(probe: &v1beta1::Probe) -> i32 {
    probe.success_threshold.unwrap_or(SUCCESS_THRESHOLD)
}

/// Failure threshold in force for `probe` (default 3).
pub fn effective_failure_threshold(probe: &v1beta1::Probe) -> i32 {
    probe.failure_threshold.unwrap_or(FAILURE_THRESHOLD)
}

/// Target port in force for a Service port (targetPort, else port).
pub fn effective_target_port(port: &k8s_openapi::api::core::v1::ServicePort) -> IntOrString {
    port.target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port))
}

/// Whether `c` can't appear as is in an HTTP request target.
pub(crate) fn needs_percent_encoding(c: char) -> bool {
    c.is_whitespace() || c.is_control() || !c.is_ascii() || "\"<>\\^`{|}".contains(c)
}

/// `path` with every character a request target can't carry as is (whitespace, control and
/// non-ASCII characters, `"`, `<`, `>`, `\`, `^`, a backtick, `{`, `|`, `}`) percent-encoded as
/// UTF-8; `%`, `?`, `#` and the rest are kept. Borrowed when nothing needs encoding.
pub fn percent_encode_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.chars().any(needs_percent_encoding) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if needs_percent_encoding(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl v1beta1::HttpProbe {
    /// Whether `status` is accepted: in `expectedStatuses` (codes or `lo-hi` ranges), or in
    /// 200..=399 when none are given. Invalid entries (rejected by validation) match nothing.
    pub fn accepts_status(&self, status: u16) -> bool {
        match self.expected_statuses.as_deref() {
            None | Some([]) => {
                (DEFAULT_EXPECTED_STATUSES.0..=DEFAULT_EXPECTED_STATUSES.1).contains(&status)
            }
            Some(list) => list.iter().any(|s| {
                crate::validation::parse_status_range(s)
                    .map(|(lo, hi)| (lo..=hi).contains(&status))
                    .unwrap_or(false)
            }),
        }
    }

    /// The path in force (`/` when empty or missing), with the characters a request target
    /// can't carry percent-encoded ([`percent_encode_path`]), as Deckhouse's agent sends them.
    /// A missing leading `/` is added by the prober.
    pub fn effective_path(&self) -> std::borrow::Cow<'_, str> {
        match self.path.as_deref() {
            None | Some("") => std::borrow::Cow::Borrowed(HTTP_PATH),
            Some(p) => percent_encode_path(p),
        }
    }
}

impl v1beta1::PostgreSqlProbe {
    /// The query in force.
    pub fn effective_query(&self) -> &str {
        self.query.as_deref().unwrap_or(POSTGRES_QUERY)
    }
}

impl v1beta1::ServiceWithHealthchecksSpec {
    /// The ports (empty when unset).
    pub fn ports(&self) -> &[k8s_openapi::api::core::v1::ServicePort] {
        self.ports.as_deref().unwrap_or_default()
    }

    /// The probes (empty when unset).
    pub fn probes(&self) -> &[v1beta1::Probe] {
        self.healthcheck
            .as_ref()
            .and_then(|h| h.probes.as_deref())
            .unwrap_or_default()
    }

    /// The Service type in force (ClusterIP when unset).
    pub fn service_type(&self) -> &str {
        self.type_.as_deref().unwrap_or(SERVICE_TYPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_fills_deckhouse_defaults_and_is_idempotent() {
        let mut spec: v1beta1::ServiceWithHealthchecksSpec =
            serde_json::from_value(serde_json::json!({
                "ports": [{"port": 80}],
                "healthcheck": {"probes": [
                    {"name": "h", "mode": "HTTP", "http": {"port": 8080}},
                    {"name": "p", "mode": "PostgreSQL", "postgreSQL": {"port": 5432}}
                ]}
            }))
            .unwrap();
        apply(&mut spec);
        let once = spec.clone();
        apply(&mut spec);
        assert_eq!(once, spec);
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports()[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        let hc = spec.healthcheck.as_ref().unwrap();
        assert_eq!(
            (hc.initial_delay_seconds, hc.period_seconds),
            (Some(10), Some(10))
        );
        let p = &spec.probes()[0];
        assert_eq!(
            (p.timeout_seconds, p.success_threshold, p.failure_threshold),
            (Some(1), Some(1), Some(3))
        );
        let h = p.http.as_ref().unwrap();
        assert_eq!(h.scheme, Some(v1beta1::HttpScheme::Http));
        assert_eq!(h.method, Some(v1beta1::HttpMethod::Get));
        let pg = spec.probes()[1].postgre_sql.as_ref().unwrap();
        assert_eq!(pg.query.as_deref(), Some("select 1"));
        assert_eq!(pg.connection, Some(v1beta1::PgConnection::Persistent));
    }

    #[test]
    fn effective_values_prefer_probe_overrides() {
        let hc = v1beta1::Healthcheck {
            period_seconds: Some(5),
            ..Default::default()
        };
        let mut p = v1beta1::Probe::default();
        assert_eq!(effective_period_seconds(&hc, &p), 5);
        assert_eq!(effective_initial_delay_seconds(&hc, &p), 10);
        p.period_seconds = Some(2);
        p.initial_delay_seconds = Some(0);
        assert_eq!(effective_period_seconds(&hc, &p), 2);
        assert_eq!(effective_initial_delay_seconds(&hc, &p), 0);
    }

    #[test]
    fn http_status_matching() {
        let mut h = v1beta1::HttpProbe::default();
        assert!(h.accepts_status(200) && h.accepts_status(399) && !h.accepts_status(404));
        h.expected_statuses = Some(vec!["200-299".into(), "404".into()]);
        assert!(h.accepts_status(204) && h.accepts_status(404) && !h.accepts_status(301));
    }
}
