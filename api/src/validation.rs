//! Admission validation: the webhook layer, for what the OpenAPI schema and CEL rules can't say
//! (and, as defence in depth, most of what they can). Objects of both served versions are
//! checked as v1beta1 (after conversion); [`check`] returns every problem at once, each naming
//! the field path (in the version the object was written in) and what would be valid.
//!
//! ## v1alpha1: nothing Deckhouse accepts is denied
//!
//! A v1alpha1 object is denied only where Deckhouse would fail on it too, and every such message
//! ends with its reason ([`Reason`]):
//! - `(Deckhouse's schema rejects it too)`: its API server would deny the object (ranges and enums
//!   of Deckhouse's CRD, e.g. `periodSeconds: 0`, a probe `targetPort` of 70000);
//! - `(the Service would be invalid)`: the child Service Deckhouse creates from the same fields
//!   could not be created (the API server's Service validation: names, ports, `clusterIP`,
//!   `nodePort` with type ClusterIP, `internalTrafficPolicy`...);
//! - `(no probe can run)`: Deckhouse's agent could not probe it (`mode: HTTP` without `http`, a
//!   selector no pod can match, a header that can't be sent).
//!
//! Everything else that swh considers risky is an admission warning on v1alpha1 (`path: what
//! happens; what to do`), e.g. a `timeoutSeconds` longer than the period (a slow target is then
//! probed at most every `timeoutSeconds`: the next probe of a (pod, probe) pair starts when the
//! previous one ended, never two at once), a path without a leading `/` (requested with one, as
//! Deckhouse does), or Service fields Deckhouse does not copy to its child Service.
//!
//! ## v1beta1 is stricter
//!
//! The same risky settings are errors on v1beta1 (our version: no existing manifests to keep
//! working), ending with `(v1beta1 only: v1alpha1 accepts it with a warning)` or, for Service
//! fields swh copies to the child Service, `(the Service would be invalid)`. An update keeps a
//! strict-only problem the stored object already had as a warning, so an object written through
//! v1alpha1 can still be edited through v1beta1. Errors on v1beta1-only fields (probe names,
//! `expectedStatuses` ranges, `bodyContains`, gRPC, PostgreSQL `tls`, `failOpen`) carry no
//! reason: no Deckhouse manifest has them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::v1beta1::{
    self, HttpMethod, HttpScheme, PgTlsMode, Probe, ProbeMode, ServiceWithHealthchecks,
};

/// One problem, with the field path and a message saying what is wrong and what would be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.healthcheck.probes[1]`.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Largest number of probes per object.
pub const MAX_PROBES: usize = 32;
/// Largest `periodSeconds` / `initialDelaySeconds` (30 h, as Deckhouse).
pub const MAX_SECONDS: i32 = 108_000;

// ---------------------------------------------------------------------------------------------
// Name checks (apimachinery semantics)
// ---------------------------------------------------------------------------------------------

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: ≤63 chars, lower-case alphanumerics and '-', alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// RFC 1035 label (Service names): an RFC 1123 label starting with a letter.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// RFC 1123 subdomain (Secret names, hostnames): ≤253 chars, dot-separated RFC 1123 labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// IANA_SVC_NAME (named ports): ≤15 chars, lower-case alphanumerics and '-', at least one letter,
/// no leading, trailing or double '-'.
pub fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn is_label_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Qualified name (label keys, appProtocol): `[prefix/]name`.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_name_part(name),
        None => is_label_name_part(s),
    }
}

/// Label value: empty, or ≤63 alphanumerics, '-', '_', '.', alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name_part(s)
}

/// RFC 7230 token (HTTP header names).
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Parse `"301"` or `"200-299"` into an inclusive range of status codes. Any code that fits in
/// 0..=65535 parses (a code no server sends simply never matches, as in Deckhouse, whose
/// v1alpha1 `code` list takes any integer); [`status_range_problem`] says whether a range is
/// within the HTTP status codes 100..599, as v1beta1 requires.
pub fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let parse = |t: &str| -> Result<u16, String> {
        let t = t.trim();
        t.parse()
            .map_err(|_| format!("{t:?} is not a number in 0..65535"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (parse(lo)?, parse(hi)?),
        None => {
            let n = parse(s)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} is empty (low end above high end)"));
    }
    Ok((lo, hi))
}

/// Why `s` is not a status code or range within 100..599 (`None`: it is).
pub fn status_range_problem(s: &str) -> Option<String> {
    match parse_status_range(s) {
        Err(why) => Some(why),
        Ok((lo, hi)) => [lo, hi]
            .into_iter()
            .find(|n| !(100..=599).contains(n))
            .map(|n| format!("{n} is outside 100..599")),
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    bits <= if ip.is_ipv4() { 32 } else { 128 }
}

fn base64_ok(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    !body.is_empty()
        && s.len().is_multiple_of(4)
        && pad <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

/// Check that `pem` holds at least one well-formed PEM certificate block.
pub fn check_pem_certificates(pem: &str) -> Result<usize, String> {
    let mut count = 0;
    let mut in_block: Option<String> = None;
    for (no, line) in pem.lines().enumerate() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if in_block.is_some() {
                return Err(format!("line {}: BEGIN inside another block", no + 1));
            }
            if label != "CERTIFICATE" && label != "TRUSTED CERTIFICATE" {
                return Err(format!(
                    "line {}: expected a CERTIFICATE block, found {label}",
                    no + 1
                ));
            }
            in_block = Some(String::new());
        } else if line.starts_with("-----END ") {
            match in_block.take() {
                Some(body) if base64_ok(&body) => count += 1,
                Some(_) => return Err(format!("line {}: block body is not base64", no + 1)),
                None => return Err(format!("line {}: END without BEGIN", no + 1)),
            }
        } else if let Some(body) = in_block.as_mut() {
            body.push_str(line);
        }
    }
    if in_block.is_some() {
        return Err("a block has no END line".into());
    }
    if count == 0 {
        return Err("no -----BEGIN CERTIFICATE----- block found".into());
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Versions, reasons, outcome
// ---------------------------------------------------------------------------------------------

/// The served version an object was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `network.deckhouse.io/v1alpha1`: only what Deckhouse would fail on too is denied.
    V1alpha1,
    /// `network.deckhouse.io/v1beta1`: stricter (see the module docs).
    V1beta1,
}

impl Version {
    /// The version of an `apiVersion` (`network.deckhouse.io/v1alpha1`) or a bare version
    /// (`v1alpha1`); `None` for anything else.
    pub fn parse(api_version: &str) -> Option<Version> {
        match api_version.rsplit('/').next() {
            Some("v1alpha1") => Some(Version::V1alpha1),
            Some("v1beta1") => Some(Version::V1beta1),
            _ => None,
        }
    }
}

/// Why an object is denied; the last words of every denial message ([`Reason::suffix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Deckhouse's CRD schema rejects it too (its API server would deny the object).
    Schema,
    /// The child Service (or its endpoints) could not be created by the API server.
    ServiceInvalid,
    /// The agent could not probe it.
    NoProbe,
    /// A v1beta1 rule; v1alpha1 accepts the same setting with a warning.
    V1beta1Only,
    /// v1alpha1 readers could not be given the object (the conversion annotation would not fit).
    Conversion,
}

impl Reason {
    /// The parenthesised end of a denial message.
    pub fn suffix(self) -> &'static str {
        match self {
            Reason::Schema => "(Deckhouse's schema rejects it too)",
            Reason::ServiceInvalid => "(the Service would be invalid)",
            Reason::NoProbe => "(no probe can run)",
            Reason::V1beta1Only => "(v1beta1 only: v1alpha1 accepts it with a warning)",
            Reason::Conversion => "(v1alpha1 readers could not be given this object)",
        }
    }
}

/// What [`check`] found: the denials, and the admission warnings (`path: what happens; advice`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Problems that deny the object (empty: allowed).
    pub errors: Vec<FieldError>,
    /// Admission warnings, each naming its field path.
    pub warnings: Vec<String>,
}

struct Ctx {
    version: Version,
    errors: Vec<FieldError>,
    warnings: Vec<String>,
    /// Strict-only (v1beta1) problems found, as (path, message).
    strict: Vec<(String, String)>,
    /// Strict-only problems the stored object already had: warnings, not errors.
    grandfathered: BTreeSet<(String, String)>,
}

impl Ctx {
    fn new(version: Version, grandfathered: BTreeSet<(String, String)>) -> Ctx {
        Ctx {
            version,
            errors: Vec::new(),
            warnings: Vec::new(),
            strict: Vec::new(),
            grandfathered,
        }
    }

    fn alpha(&self) -> bool {
        self.version == Version::V1alpha1
    }

    /// Field name of a probe's port: `targetPort` in v1alpha1, `port` in v1beta1.
    fn probe_port_field(&self) -> &'static str {
        if self.alpha() { "targetPort" } else { "port" }
    }

    /// Denied in both versions, for `reason`.
    fn deny(&mut self, path: impl Into<String>, message: impl AsRef<str>, reason: Reason) {
        self.errors.push(FieldError {
            path: path.into(),
            message: format!("{} {}", message.as_ref(), reason.suffix()),
        });
    }

    /// An error on a v1beta1-only field (no reason: no Deckhouse manifest has it).
    fn invalid(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Always a warning.
    fn warn(&mut self, path: impl AsRef<str>, message: impl AsRef<str>) {
        self.warnings
            .push(format!("{}: {}", path.as_ref(), message.as_ref()));
    }

    /// Risky: a warning in v1alpha1 (`alpha_message`); in v1beta1 an error ending with `beta`,
    /// or a warning when the stored object already had it.
    fn strict(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        alpha_message: Option<String>,
        beta: Reason,
    ) {
        let (path, message) = (path.into(), message.into());
        if self.alpha() {
            let text = alpha_message.unwrap_or(message);
            self.warn(&path, text);
            return;
        }
        let key = (path, message);
        self.strict.push(key.clone());
        if self.grandfathered.contains(&key) {
            let (path, message) = key;
            self.warn(path, format!("{message} (kept: the stored object has it)"));
        } else {
            let (path, message) = key;
            self.errors.push(FieldError {
                path,
                message: format!("{message} {}", beta.suffix()),
            });
        }
    }

    /// [`Ctx::strict`] with the same text in both versions and reason `V1beta1Only`.
    fn risk(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.strict(path, message, None, Reason::V1beta1Only);
    }

    /// An invalid value of a Service field that Deckhouse does not copy to its child Service
    /// (so v1alpha1 only warns) but swh does (so v1beta1 denies: the Service would be invalid).
    fn passthrough(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let message = message.into();
        let alpha = format!(
            "{message} (Deckhouse ignores this field; swh copies it to the child Service, which \
             the API server would reject)"
        );
        self.strict(path, message, Some(alpha), Reason::ServiceInvalid);
    }
}

fn port_number_problem(port: i32) -> Option<String> {
    (!(1..=65535).contains(&port))
        .then(|| format!("{port} is out of range; use a number in 1..65535"))
}

fn port_name_problem(name: &str) -> Option<String> {
    (!is_iana_svc_name(name)).then(|| {
        format!(
            "{name:?} is not a valid port name; use a number in 1..65535 or an IANA_SVC_NAME (at \
             most 15 lower-case letters, digits and '-', with at least one letter, e.g. \"http\")"
        )
    })
}

fn int_or_name_problem(port: &IntOrString) -> Option<String> {
    match port {
        IntOrString::Int(n) => port_number_problem(*n),
        IntOrString::String(s) => port_name_problem(s),
    }
}

// ---------------------------------------------------------------------------------------------
// check / validate
// ---------------------------------------------------------------------------------------------

const TYPES: [&str; 3] = ["ClusterIP", "NodePort", "LoadBalancer"];

/// Largest `successThreshold` / `failureThreshold` v1beta1 takes (v1alpha1: any, as Deckhouse).
pub const MAX_THRESHOLD: i32 = 10_000;

/// Every problem of `new` (and of the update from `old`, when given), written in `version`:
/// errors deny it, warnings go back to the client. On v1alpha1 only what Deckhouse would fail on
/// is an error (see the module docs).
pub fn check(
    new: &ServiceWithHealthchecks,
    old: Option<&ServiceWithHealthchecks>,
    version: Version,
) -> Checked {
    let grandfathered = match (version, old) {
        (Version::V1beta1, Some(old)) => {
            let mut c = Ctx::new(Version::V1beta1, BTreeSet::new());
            check_object(&mut c, old);
            c.strict.into_iter().collect()
        }
        _ => BTreeSet::new(),
    };
    let mut c = Ctx::new(version, grandfathered);
    check_object(&mut c, new);
    if let Some(old) = old {
        check_update(&mut c, &new.spec, &old.spec);
    }
    let mut warnings = c.warnings;
    for w in warnings_of(new) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    Checked {
        errors: c.errors,
        warnings,
    }
}

/// The errors of `new` (and of the update from `old`) as v1beta1, the strict version: what
/// [`check`] with [`Version::V1beta1`] denies. Empty means valid.
pub fn validate(
    new: &ServiceWithHealthchecks,
    old: Option<&ServiceWithHealthchecks>,
) -> Vec<FieldError> {
    check(new, old, Version::V1beta1).errors
}

fn check_object(c: &mut Ctx, obj: &ServiceWithHealthchecks) {
    match obj.metadata.name.as_deref() {
        Some(name) if is_dns1035_label(name) => {}
        Some(name) => c.deny(
            "metadata.name",
            format!(
                "{name:?} is not a valid Service name (the child Service has the same name); use \
                 at most 63 lower-case letters, digits and '-', starting with a letter and ending \
                 with a letter or digit (e.g. \"web\")"
            ),
            Reason::ServiceInvalid,
        ),
        None => {
            if obj.metadata.generate_name.is_none() {
                c.deny(
                    "metadata.name",
                    "name is required; set metadata.name",
                    Reason::Schema,
                );
            }
        }
    }
    validate_spec(c, &obj.spec);
    let v1beta1_only = crate::conversion::spec_annotation_bytes(&obj.spec);
    if v1beta1_only > crate::conversion::SPEC_ANNOTATION_BUDGET {
        c.deny(
            "spec.healthcheck.probes",
            format!(
                "the settings v1alpha1 has no field for (probe names, per-probe periods, \
                 PostgreSQL connection/TLS, gRPC, failOpen...) take {v1beta1_only} bytes, more \
                 than the {} bytes that fit in the {} annotation v1alpha1 readers get; shrink \
                 them, e.g. put PostgreSQL CA certificates in the auth Secret's caCert key \
                 instead of tls.caCert",
                crate::conversion::SPEC_ANNOTATION_BUDGET,
                crate::annotations::V1BETA1_FIELDS
            ),
            Reason::Conversion,
        );
    }
}

fn check_update(
    c: &mut Ctx,
    new: &v1beta1::ServiceWithHealthchecksSpec,
    old: &v1beta1::ServiceWithHealthchecksSpec,
) {
    let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if let Some(old_ip) = set(&old.cluster_ip)
        && set(&new.cluster_ip) != Some(old_ip.clone())
    {
        c.risk(
            "spec.clusterIP",
            format!(
                "clusterIP was {old_ip:?} and can't change: the child Service keeps it \
                 (status.clusterIP); keep spec.clusterIP: {old_ip:?}, or delete and recreate \
                 the object"
            ),
        );
    }
    if let (Some(old_ips), Some(new_ips)) = (&old.cluster_ips, &new.cluster_ips)
        && let (Some(o), Some(n)) = (old_ips.first(), new_ips.first())
        && !o.is_empty()
        && o != n
    {
        c.risk(
            "spec.clusterIPs[0]",
            format!(
                "the primary clusterIP was {o:?} and can't change: the child Service keeps it; \
                 keep it as the first entry"
            ),
        );
    }
}

fn validate_spec(c: &mut Ctx, spec: &v1beta1::ServiceWithHealthchecksSpec) {
    let type_ = spec.service_type();
    match type_ {
        t if TYPES.contains(&t) => {}
        "ExternalName" => c.deny(
            "spec.type",
            "type ExternalName is not supported: a ServiceWithHealthchecks publishes probed pod \
             endpoints and an ExternalName Service has none (nor would Deckhouse's child Service \
             get an externalName); use ClusterIP, NodePort or LoadBalancer",
            Reason::ServiceInvalid,
        ),
        t => c.deny(
            "spec.type",
            format!("unsupported type {t:?}; use one of ClusterIP, NodePort, LoadBalancer"),
            Reason::ServiceInvalid,
        ),
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let node_ports_allowed = matches!(type_, "NodePort" | "LoadBalancer");
    let lb = type_ == "LoadBalancer";

    validate_ports(c, spec, headless, node_ports_allowed);
    validate_addresses(c, spec, headless, type_);

    if let Some(sel) = &spec.selector {
        for (k, v) in sel {
            let path = format!("spec.selector[{k:?}]");
            if !is_qualified_name(k) {
                c.deny(
                    path.clone(),
                    format!(
                        "{k:?} is not a valid label key, so no pod can match; use [prefix/]name \
                         with a name of at most 63 alphanumerics, '-', '_' or '.' (e.g. \"app\")"
                    ),
                    Reason::NoProbe,
                );
            }
            if !is_label_value(v) {
                c.deny(
                    path,
                    format!(
                        "{v:?} is not a valid label value, so no pod can match; use at most 63 \
                         alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                    ),
                    Reason::NoProbe,
                );
            }
        }
    }

    let client_ip = spec.session_affinity.as_deref() == Some("ClientIP");
    match spec.session_affinity.as_deref() {
        None | Some("None") | Some("ClientIP") => {}
        Some(other) => c.passthrough(
            "spec.sessionAffinity",
            format!("unsupported value {other:?}; use ClientIP or None"),
        ),
    }
    if let Some(cfg) = &spec.session_affinity_config {
        if !client_ip {
            c.risk(
                "spec.sessionAffinityConfig",
                "only used with sessionAffinity: ClientIP, so it is ignored; set sessionAffinity: \
                 ClientIP or remove sessionAffinityConfig",
            );
        } else if let Some(t) = cfg.client_ip.as_ref().and_then(|c| c.timeout_seconds)
            && !(1..=86400).contains(&t)
        {
            c.passthrough(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                format!("{t} is out of range; use 1..86400 seconds"),
            );
        }
    }
    if let Some(v) = &spec.internal_traffic_policy
        && v != "Cluster"
        && v != "Local"
    {
        c.deny(
            "spec.internalTrafficPolicy",
            format!("unsupported value {v:?}; use Cluster or Local"),
            Reason::ServiceInvalid,
        );
    }
    if let Some(v) = &spec.external_traffic_policy {
        if !node_ports_allowed {
            c.risk(
                "spec.externalTrafficPolicy",
                format!(
                    "only used when type is NodePort or LoadBalancer (type is {type_}), so it is \
                     ignored; remove it or change spec.type"
                ),
            );
        } else if v != "Cluster" && v != "Local" {
            c.deny(
                "spec.externalTrafficPolicy",
                format!("unsupported value {v:?}; use Cluster or Local"),
                Reason::ServiceInvalid,
            );
        }
    }
    if let Some(p) = spec.health_check_node_port {
        if !(lb && spec.external_traffic_policy.as_deref() == Some("Local")) {
            c.risk(
                "spec.healthCheckNodePort",
                "only used with type LoadBalancer and externalTrafficPolicy Local, so it is \
                 ignored; remove it or change those fields",
            );
        } else if let Some(why) = port_number_problem(p) {
            c.passthrough("spec.healthCheckNodePort", why);
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && !lb {
        c.risk(
            "spec.allocateLoadBalancerNodePorts",
            "only used when type is LoadBalancer, so it is ignored; remove it",
        );
    }
    if let Some(class) = &spec.load_balancer_class {
        if !lb {
            c.risk(
                "spec.loadBalancerClass",
                "only used when type is LoadBalancer, so it is ignored; remove it",
            );
        } else if !is_qualified_name(class) {
            c.passthrough(
                "spec.loadBalancerClass",
                format!(
                    "{class:?} is not a valid class; use a label-style name such as \
                     \"example.com/internal-vip\""
                ),
            );
        }
    }
    match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack" | "PreferDualStack" | "RequireDualStack") => {}
        Some(other) => c.passthrough(
            "spec.ipFamilyPolicy",
            format!(
                "unsupported value {other:?}; use SingleStack, PreferDualStack or RequireDualStack"
            ),
        ),
    }
    if let Some(fams) = &spec.ip_families {
        let mut seen = BTreeSet::new();
        for (i, f) in fams.iter().enumerate() {
            let path = format!("spec.ipFamilies[{i}]");
            if f != "IPv4" && f != "IPv6" {
                c.passthrough(path, format!("unsupported family {f:?}; use IPv4 or IPv6"));
            } else if !seen.insert(f) {
                c.passthrough(path, format!("{f} is listed twice; list each family once"));
            }
        }
        if fams.len() > 2 {
            c.passthrough(
                "spec.ipFamilies",
                format!(
                    "{} families given; list at most two (IPv4, IPv6)",
                    fams.len()
                ),
            );
        }
        if fams.len() == 2 && spec.ip_family_policy.as_deref() == Some("SingleStack") {
            c.passthrough(
                "spec.ipFamilies",
                "two families need ipFamilyPolicy PreferDualStack or RequireDualStack; remove \
                 one family or change spec.ipFamilyPolicy",
            );
        }
    }
    if let Some(td) = &spec.traffic_distribution
        && !matches!(
            td.as_str(),
            "PreferClose" | "PreferSameZone" | "PreferSameNode"
        )
    {
        c.passthrough(
            "spec.trafficDistribution",
            format!("unsupported value {td:?}; use PreferClose, PreferSameZone or PreferSameNode"),
        );
    }

    if let Some(hc) = &spec.healthcheck {
        validate_healthcheck(c, hc);
    }
}

fn validate_ports(
    c: &mut Ctx,
    spec: &v1beta1::ServiceWithHealthchecksSpec,
    headless: bool,
    node_ports_allowed: bool,
) {
    let ports = spec.ports();
    if ports.is_empty() && !headless {
        c.deny(
            "spec.ports",
            "at least one port is required (only a headless service, clusterIP: None, may have \
             none); add e.g. spec.ports: [{port: 80, targetPort: 8080}]",
            Reason::ServiceInvalid,
        );
    }
    let mut names = BTreeMap::new();
    let mut keys = BTreeMap::new();
    let mut node_ports = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match p.name.as_deref() {
            Some(n) if !n.is_empty() => {
                if !is_dns1123_label(n) {
                    c.deny(
                        format!("{path}.name"),
                        format!(
                            "{n:?} is not a valid port name; use a DNS label: at most 63 \
                             lower-case letters, digits and '-', starting and ending with a \
                             letter or digit"
                        ),
                        Reason::ServiceInvalid,
                    );
                }
                if let Some(first) = names.insert(n.to_string(), i) {
                    c.deny(
                        format!("{path}.name"),
                        format!(
                            "duplicate port name {n:?} (also spec.ports[{first}]); give every \
                             port a unique name"
                        ),
                        Reason::ServiceInvalid,
                    );
                }
            }
            _ if ports.len() > 1 => c.deny(
                format!("{path}.name"),
                "name is required when there is more than one port; set a unique DNS label \
                 such as \"http\"",
                Reason::ServiceInvalid,
            ),
            _ => {}
        }
        if let Some(why) = port_number_problem(p.port) {
            c.deny(format!("{path}.port"), why, Reason::ServiceInvalid);
        }
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
            c.deny(
                format!("{path}.protocol"),
                format!("unsupported protocol {protocol:?}; use TCP, UDP or SCTP"),
                Reason::ServiceInvalid,
            );
        }
        if let Some(first) = keys.insert((p.port, protocol.to_string()), i) {
            c.deny(
                path.clone(),
                format!(
                    "duplicate port {}/{protocol} (also spec.ports[{first}]); each port and \
                     protocol pair may appear once",
                    p.port
                ),
                Reason::Schema,
            );
        }
        match &p.target_port {
            Some(IntOrString::Int(0)) => c.deny(
                format!("{path}.targetPort"),
                format!(
                    "0 is not a port: the EndpointSlices would carry port 0, which the API \
                     server rejects; omit targetPort to use port {}, or set the pods' port",
                    p.port
                ),
                Reason::ServiceInvalid,
            ),
            Some(tp) => {
                if let Some(why) = int_or_name_problem(tp) {
                    c.deny(format!("{path}.targetPort"), why, Reason::ServiceInvalid);
                }
            }
            None => {}
        }
        if let Some(np) = p.node_port.filter(|np| *np != 0) {
            let np_path = format!("{path}.nodePort");
            if !node_ports_allowed {
                c.deny(
                    np_path.clone(),
                    "nodePort may only be set when type is NodePort or LoadBalancer; remove \
                     nodePort or change spec.type",
                    Reason::ServiceInvalid,
                );
            }
            if let Some(why) = port_number_problem(np) {
                c.deny(np_path.clone(), why, Reason::ServiceInvalid);
            }
            if let Some(first) = node_ports.insert((np, protocol.to_string()), i) {
                c.deny(
                    np_path,
                    format!(
                        "duplicate nodePort {np}/{protocol} (also spec.ports[{first}]); use a \
                         different nodePort or leave it unset to allocate one"
                    ),
                    Reason::ServiceInvalid,
                );
            }
        }
        if let Some(ap) = &p.app_protocol
            && !is_qualified_name(ap)
        {
            c.deny(
                format!("{path}.appProtocol"),
                format!(
                    "{ap:?} is not a valid appProtocol; use an IANA service name (e.g. \"http\") \
                     or a prefixed name (e.g. \"kubernetes.io/h2c\")"
                ),
                Reason::ServiceInvalid,
            );
        }
    }
}

fn ip_problem(ip: &str, allow_none: bool) -> Option<String> {
    if (allow_none && ip == "None") || ip.is_empty() || ip.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(format!(
        "{ip:?} is not a valid IP address; use an IPv4 or IPv6 address{}",
        if allow_none {
            ", \"None\" for a headless service, or leave it unset to allocate one"
        } else {
            ""
        }
    ))
}

fn validate_addresses(
    c: &mut Ctx,
    spec: &v1beta1::ServiceWithHealthchecksSpec,
    headless: bool,
    type_: &str,
) {
    if let Some(why) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip_problem(ip, true))
    {
        c.deny("spec.clusterIP", why, Reason::ServiceInvalid);
    }
    if headless && type_ != "ClusterIP" {
        c.deny(
            "spec.clusterIP",
            format!(
                "clusterIP None (headless) requires type ClusterIP (type is {type_}); change \
                 spec.type or remove clusterIP"
            ),
            Reason::ServiceInvalid,
        );
    }
    if let Some(ips) = &spec.cluster_ips {
        for (i, ip) in ips.iter().enumerate() {
            if let Some(why) = ip_problem(ip, i == 0) {
                c.passthrough(format!("spec.clusterIPs[{i}]"), why);
            }
        }
        if ips.len() > 2 {
            c.passthrough(
                "spec.clusterIPs",
                format!(
                    "{} addresses given; list at most two (one per family)",
                    ips.len()
                ),
            );
        }
        if let (Some(ip), Some(first)) = (spec.cluster_ip.as_deref(), ips.first())
            && !ip.is_empty()
            && ip != first
        {
            c.passthrough(
                "spec.clusterIPs[0]",
                format!(
                    "must equal spec.clusterIP ({ip:?}); make clusterIPs[0] {ip:?} or remove \
                     one of the fields"
                ),
            );
        }
        if let [a, b] = ips.as_slice()
            && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
            && a.is_ipv4() == b.is_ipv4()
        {
            c.passthrough(
                "spec.clusterIPs[1]",
                "the two clusterIPs must be of different families (one IPv4, one IPv6)",
            );
        }
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        if let Some(why) = ip_problem(ip, false).filter(|_| !ip.is_empty()) {
            c.passthrough(format!("spec.externalIPs[{i}]"), why);
        }
    }
    if let Some(why) = spec
        .load_balancer_ip
        .as_deref()
        .and_then(|ip| ip_problem(ip, false))
    {
        c.risk("spec.loadBalancerIP", why);
    }
    for (i, r) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        if !is_cidr(r.trim()) {
            let path = format!("spec.loadBalancerSourceRanges[{i}]");
            let why = format!("{r:?} is not a CIDR; use e.g. \"10.0.0.0/8\" or \"2001:db8::/32\"");
            if type_ == "LoadBalancer" {
                c.passthrough(path, why);
            } else {
                c.risk(path, why);
            }
        }
    }
}

fn validate_healthcheck(c: &mut Ctx, hc: &v1beta1::Healthcheck) {
    if let Some(d) = hc.initial_delay_seconds
        && !(0..=MAX_SECONDS).contains(&d)
    {
        c.deny(
            "spec.healthcheck.initialDelaySeconds",
            format!("{d} is out of range; use 0..{MAX_SECONDS} seconds"),
            Reason::Schema,
        );
    }
    if let Some(p) = hc.period_seconds
        && !(1..=MAX_SECONDS).contains(&p)
    {
        c.deny(
            "spec.healthcheck.periodSeconds",
            format!("{p} is out of range; use 1..{MAX_SECONDS} seconds"),
            Reason::Schema,
        );
    }
    if let Some(f) = &hc.fail_open
        && !(1..=100).contains(&f.min_passing_percent)
    {
        c.invalid(
            "spec.healthcheck.failOpen.minPassingPercent",
            format!(
                "{} is out of range; use a percentage in 1..100",
                f.min_passing_percent
            ),
        );
    }
    let probes = hc.probes.as_deref().unwrap_or_default();
    if probes.len() > MAX_PROBES {
        let n = probes.len();
        c.strict(
            "spec.healthcheck.probes",
            format!("{n} probes given; use at most {MAX_PROBES}"),
            Some(format!(
                "{n} probes: v1beta1 takes at most {MAX_PROBES}, so write this object through \
                 v1alpha1 only"
            )),
            Reason::V1beta1Only,
        );
    }
    let mut names = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        let path = format!("spec.healthcheck.probes[{i}]");
        if !is_dns1123_label(&p.name) {
            c.invalid(
                format!("{path}.name"),
                format!(
                    "{:?} is not a valid probe name; use a DNS label: at most 63 lower-case \
                     letters, digits and '-', starting and ending with a letter or digit (e.g. \
                     \"http-ready\")",
                    p.name
                ),
            );
        }
        if let Some(first) = names.insert(p.name.as_str(), i) {
            c.invalid(
                format!("{path}.name"),
                format!(
                    "duplicate probe name {:?} (also spec.healthcheck.probes[{first}]); give \
                     every probe a unique name",
                    p.name
                ),
            );
        }
        validate_probe(c, hc, &path, p);
    }
}

fn validate_probe(c: &mut Ctx, hc: &v1beta1::Healthcheck, path: &str, p: &Probe) {
    let present = [
        (ProbeMode::Http, p.http.is_some()),
        (ProbeMode::Tcp, p.tcp.is_some()),
        (ProbeMode::PostgreSql, p.postgre_sql.is_some()),
        (ProbeMode::Grpc, p.grpc.is_some()),
    ];
    let mode = p.mode;
    for (m, set) in present {
        if m == mode && !set {
            c.deny(
                path,
                format!(
                    "mode is {mode} but field {f} is missing; add {path}.{f}",
                    f = m.field()
                ),
                Reason::NoProbe,
            );
        } else if m != mode && set {
            c.risk(
                format!("{path}.{}", m.field()),
                format!(
                    "mode is {mode}, so {} is ignored (only {} is used); remove it or change \
                     mode to {m}",
                    m.field(),
                    mode.field()
                ),
            );
        }
    }
    for (field, value, max) in [
        ("timeoutSeconds", p.timeout_seconds, MAX_SECONDS),
        ("successThreshold", p.success_threshold, MAX_THRESHOLD),
        ("failureThreshold", p.failure_threshold, MAX_THRESHOLD),
    ] {
        match value {
            Some(v) if v < 1 => {
                let valid = if c.alpha() {
                    "1 or more".to_string()
                } else {
                    format!("1..{max}")
                };
                c.deny(
                    format!("{path}.{field}"),
                    format!("{v} is out of range; use {valid}"),
                    Reason::Schema,
                );
            }
            // v1alpha1: a long timeout gets the period warning below.
            Some(v) if v > max && !(c.alpha() && field == "timeoutSeconds") => c.strict(
                format!("{path}.{field}"),
                format!("{v} is out of range; use 1..{max}"),
                Some(format!(
                    "{v} is above {max}, the most v1beta1 takes: a target changes state only \
                     after {v} consecutive results"
                )),
                Reason::V1beta1Only,
            ),
            _ => {}
        }
    }
    for (field, value, min) in [
        ("periodSeconds", p.period_seconds, 1),
        ("initialDelaySeconds", p.initial_delay_seconds, 0),
        ("transitionPeriodSeconds", p.transition_period_seconds, 1),
    ] {
        if let Some(v) = value
            && (v < min || v > MAX_SECONDS)
        {
            c.invalid(
                format!("{path}.{field}"),
                format!("{v} is out of range; use {min}..{MAX_SECONDS}"),
            );
        }
    }
    let period = crate::defaults::effective_period_seconds(hc, p);
    if let Some(t) = p.transition_period_seconds
        && (1..=MAX_SECONDS).contains(&t)
        && period >= 1
        && t > period
    {
        c.invalid(
            format!("{path}.transitionPeriodSeconds"),
            format!(
                "{t} > periodSeconds {period}: the interval used while a target changes state \
                 must not exceed the period; use 1..{period} or remove it (it defaults to the \
                 period)"
            ),
        );
    }
    let timeout = crate::defaults::effective_timeout_seconds(p);
    if timeout > period && period >= 1 {
        c.risk(
            format!("{path}.timeoutSeconds"),
            if timeout <= MAX_SECONDS {
                format!(
                    "{timeout} > periodSeconds {period}: a slow target is probed at most every \
                     {timeout} s (the next probe starts when the previous one ends); use \
                     timeoutSeconds <= {period} or periodSeconds >= {timeout} to probe every \
                     {period} s"
                )
            } else {
                format!(
                    "{timeout} > periodSeconds {period}: a slow target is probed at most every \
                     {timeout} s (the next probe starts when the previous one ends); use \
                     timeoutSeconds <= {period} to probe every {period} s"
                )
            },
        );
    }

    let pf = c.probe_port_field();
    if let Some(h) = &p.http {
        let hp = format!("{path}.http");
        if let Some(why) = int_or_name_problem(&h.port) {
            c.deny(format!("{hp}.{pf}"), why, Reason::Schema);
        }
        if let Some(pa) = &h.path {
            if !pa.starts_with('/') {
                c.risk(
                    format!("{hp}.path"),
                    format!(
                        "{pa:?} does not start with '/'; it is requested as \"/{pa}\", so write \
                         that"
                    ),
                );
            }
            if pa.chars().any(crate::defaults::needs_percent_encoding) {
                let sent = crate::defaults::percent_encode_path(pa);
                c.risk(
                    format!("{hp}.path"),
                    format!(
                        "{pa:?} has spaces, control or non-ASCII characters; it is sent \
                         percent-encoded ({sent:?}), so write that"
                    ),
                );
            }
        }
        if let Some(host) = &h.host {
            let bare = host
                .rsplit_once(':')
                .filter(|(_, port)| port.parse::<u16>().is_ok() && !host.starts_with('['))
                .map(|(h, _)| h)
                .unwrap_or(host);
            let ok = is_dns1123_subdomain(&bare.to_ascii_lowercase())
                || bare.trim_matches(['[', ']']).parse::<IpAddr>().is_ok();
            if host.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                c.deny(
                    format!("{hp}.host"),
                    format!(
                        "{host:?} is not a host name (it has spaces or control characters); use \
                         a DNS name such as \"app.example.com\" or remove host to use the pod IP"
                    ),
                    Reason::Schema,
                );
            } else if host.is_empty() {
                c.risk(
                    format!("{hp}.host"),
                    "host is empty, so the pod IP is used; remove host",
                );
            } else if !ok {
                c.risk(
                    format!("{hp}.host"),
                    format!(
                        "{host:?} is not a DNS name or IP address; it is sent as the Host header \
                         and TLS server name as is; use e.g. \"app.example.com\""
                    ),
                );
            }
        }
        for (j, header) in h.http_headers.iter().flatten().enumerate() {
            if !is_http_token(&header.name) {
                c.deny(
                    format!("{hp}.httpHeaders[{j}].name"),
                    format!(
                        "{:?} is not a valid header name; use letters, digits and \
                         !#$%&'*+-.^_`|~ only (e.g. \"X-Probe\")",
                        header.name
                    ),
                    Reason::NoProbe,
                );
            }
            if header
                .value
                .chars()
                .any(|ch| ch == '\r' || ch == '\n' || ch == '\0')
            {
                c.deny(
                    format!("{hp}.httpHeaders[{j}].value"),
                    "header value must not contain CR, LF or NUL; put it on one line",
                    Reason::NoProbe,
                );
            }
        }
        for (j, s) in h.expected_statuses.iter().flatten().enumerate() {
            let Some(why) = status_range_problem(s) else {
                continue;
            };
            if c.alpha() {
                c.warn(
                    format!("{hp}.code[{j}]"),
                    format!("{s} is not an HTTP status (100..599), so it never matches; remove it"),
                );
            } else {
                let message = format!(
                    "{s:?} is not a valid status or range ({why}); use a code like \"200\" or a \
                     range like \"200-299\" within 100..599"
                );
                if parse_status_range(s).is_ok() {
                    c.risk(format!("{hp}.expectedStatuses[{j}]"), message);
                } else {
                    c.invalid(format!("{hp}.expectedStatuses[{j}]"), message);
                }
            }
        }
        if let Some(ca) = &h.ca_cert
            && let Err(why) = check_pem_certificates(ca)
        {
            c.risk(
                format!("{hp}.caCert"),
                format!(
                    "not a PEM certificate bundle ({why}), so HTTPS probes fail; paste the CA \
                     certificate(s) in PEM form"
                ),
            );
        }
        if h.body_contains.is_some() && h.method == Some(HttpMethod::Head) {
            c.invalid(
                format!("{hp}.bodyContains"),
                "a HEAD response has no body, so bodyContains can never match; use method GET \
                 or remove bodyContains",
            );
        }
    }
    if let Some(t) = &p.tcp
        && let Some(why) = int_or_name_problem(&t.port)
    {
        c.deny(format!("{path}.tcp.{pf}"), why, Reason::Schema);
    }
    if let Some(g) = &p.grpc {
        if let Some(why) = int_or_name_problem(&g.port) {
            c.invalid(format!("{path}.grpc.port"), why);
        }
        if let Some(s) = &g.service
            && s.chars().any(|ch| ch.is_control())
        {
            c.invalid(
                format!("{path}.grpc.service"),
                "service must not contain control characters; use a name like \
                 \"grpc.health.v1.Health\" or leave it empty for the whole server",
            );
        }
    }
    if let Some(pg) = &p.postgre_sql {
        let pp = format!("{path}.postgreSQL");
        if let Some(why) = int_or_name_problem(&pg.port) {
            c.deny(format!("{pp}.{pf}"), why, Reason::Schema);
        }
        if let Some(s) = &pg.auth_secret_name
            && !is_dns1123_subdomain(s)
        {
            c.risk(
                format!("{pp}.authSecretName"),
                format!(
                    "{s:?} is not a valid Secret name, so no such Secret exists and the probe \
                     fails; use a DNS subdomain (e.g. \"cred-secret\")"
                ),
            );
        }
        if let Some(q) = &pg.query
            && q.trim().is_empty()
        {
            c.risk(
                format!("{pp}.query"),
                "query is empty, so the probe fails; use a query returning a boolean, e.g. \
                 \"select 1\", or remove it for the default",
            );
        }
        if let Some(db) = &pg.db_name {
            if db.contains('\0') {
                c.deny(
                    format!("{pp}.dbName"),
                    "dbName contains NUL, which a connection can't carry; remove it",
                    Reason::NoProbe,
                );
            } else if db.is_empty() || db.len() > 63 {
                c.risk(
                    format!("{pp}.dbName"),
                    format!(
                        "{db:?} is not a usable database name (1..63 bytes; PostgreSQL cuts \
                         longer names); remove it to use the user name"
                    ),
                );
            }
        }
        if let Some(tls) = &pg.tls {
            if let Some(ca) = &tls.ca_cert
                && let Err(why) = check_pem_certificates(ca)
            {
                c.invalid(
                    format!("{pp}.tls.caCert"),
                    format!("caCert is not a PEM certificate bundle ({why}); paste the CA certificate(s) in PEM form"),
                );
            }
            if let Some(sn) = &tls.server_name
                && !is_dns1123_subdomain(&sn.to_ascii_lowercase())
                && sn.parse::<IpAddr>().is_err()
            {
                c.invalid(
                    format!("{pp}.tls.serverName"),
                    format!("{sn:?} is not a valid server name; use a DNS name such as \"db.example.com\""),
                );
            }
            if tls.ca_cert.is_some()
                && matches!(
                    tls.mode,
                    Some(PgTlsMode::Disabled | PgTlsMode::SkipVerification)
                )
            {
                c.invalid(
                    format!("{pp}.tls.caCert"),
                    "caCert is only used with mode VerifyCA or VerifyAll; change tls.mode or \
                     remove caCert",
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// warnings
// ---------------------------------------------------------------------------------------------

/// Soft issues to return as admission warnings, in either version (what [`check`] adds to the
/// warnings of relaxed rules).
pub fn warnings(new: &ServiceWithHealthchecks) -> Vec<String> {
    warnings_of(new)
}

fn warnings_of(new: &ServiceWithHealthchecks) -> Vec<String> {
    let spec = &new.spec;
    let mut out = Vec::new();
    if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        out.push(
            "spec.selector is empty: it selects EVERY pod in the namespace (as in Deckhouse, \
             unlike a Service); set spec.selector to the pods' labels"
                .to_string(),
        );
    }
    let probes = spec.probes();
    if spec.healthcheck.is_none() || probes.is_empty() {
        out.push(
            "no probes in spec.healthcheck.probes: pods are published on readiness alone, like \
             a plain Service"
                .to_string(),
        );
    }
    if spec.publish_not_ready_addresses == Some(true) && !probes.is_empty() {
        out.push(
            "spec.publishNotReadyAddresses is true: every selected pod is published regardless \
             of the probes"
                .to_string(),
        );
    }
    if spec.external_name.is_some() {
        out.push(
            "spec.externalName is ignored unless type is ExternalName (which is not supported)"
                .into(),
        );
    }
    let udp_targets: BTreeSet<String> = spec
        .ports()
        .iter()
        .filter(|p| p.protocol.as_deref() == Some("UDP"))
        .map(|p| match crate::defaults::effective_target_port(p) {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s,
        })
        .collect();
    for (i, p) in probes.iter().enumerate() {
        let path = format!("spec.healthcheck.probes[{i}]");
        if let Some(h) = &p.http {
            if h.insecure_skip_tls_verify == Some(true) {
                out.push(format!(
                    "{path}.http.insecureSkipTLSVerify is true: the server certificate is not \
                     verified; prefer caCert"
                ));
                if h.scheme != Some(HttpScheme::Https) {
                    out.push(format!(
                        "{path}.http.insecureSkipTLSVerify has no effect with scheme HTTP"
                    ));
                }
            }
            if h.ca_cert.is_some() && h.scheme != Some(HttpScheme::Https) {
                out.push(format!("{path}.http.caCert has no effect with scheme HTTP"));
            }
        }
        if let Some(pg) = &p.postgre_sql {
            if pg.auth_secret_name.is_none() {
                out.push(format!(
                    "{path}.postgreSQL.authSecretName is not set: the probe has no credentials \
                     (name a Secret with keys user and password)"
                ));
            }
            if let Some(tls) = &pg.tls
                && tls.mode == Some(PgTlsMode::VerifyAll)
                && tls.server_name.is_none()
            {
                out.push(format!(
                    "{path}.postgreSQL.tls: mode VerifyAll checks the certificate against the \
                     pod IP unless tls.serverName is set"
                ));
            }
        }
        let port = [
            p.http.as_ref().map(|h| &h.port),
            p.tcp.as_ref().map(|t| &t.port),
            p.postgre_sql.as_ref().map(|g| &g.port),
            p.grpc.as_ref().map(|g| &g.port),
        ]
        .into_iter()
        .flatten()
        .next();
        if let Some(port) = port {
            let key = match port {
                IntOrString::Int(n) => n.to_string(),
                IntOrString::String(s) => s.clone(),
            };
            if udp_targets.contains(&key) {
                out.push(format!(
                    "{path} probes port {key}, which is a UDP target port of this service; the \
                     probe uses TCP"
                ));
            }
        }
    }
    out
}

/// Check raw JSON objects of either served version (what an AdmissionReview carries): both are
/// converted to v1beta1 first and checked as the version `new` is written in. A decoding
/// failure is reported as one error at the root.
pub fn check_json(new: serde_json::Value, old: Option<serde_json::Value>) -> Checked {
    let version = new
        .get("apiVersion")
        .and_then(serde_json::Value::as_str)
        .and_then(Version::parse)
        .unwrap_or(Version::V1beta1);
    let decode = |v: serde_json::Value| {
        crate::conversion::to_v1beta1(v).map_err(|e| FieldError {
            path: "<object>".into(),
            message: format!("{e}; send a ServiceWithHealthchecks matching the CRD schema"),
        })
    };
    let new = match decode(new) {
        Ok(n) => n,
        Err(e) => {
            return Checked {
                errors: vec![e],
                warnings: Vec::new(),
            };
        }
    };
    let old = old.and_then(|o| decode(o).ok());
    check(&new, old.as_ref(), version)
}

/// The errors of [`check_json`].
pub fn validate_json(new: serde_json::Value, old: Option<serde_json::Value>) -> Vec<FieldError> {
    check_json(new, old).errors
}
