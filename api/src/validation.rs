//! Admission validation of v1beta1 objects: the webhook layer, for what the OpenAPI schema and
//! CEL rules can't say (and, as defence in depth, most of what they can). [`validate`] returns
//! every problem; each names the field path and says what would be valid.

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

struct Errs(Vec<FieldError>);

impl Errs {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

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

/// Parse `"301"` or `"200-299"` into an inclusive range of HTTP status codes (100..=599).
pub fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let parse = |t: &str| -> Result<u16, String> {
        let t = t.trim();
        let n: u16 = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
        if (100..=599).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is outside 100..599"))
        }
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

fn check_port_number(errs: &mut Errs, path: &str, what: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.push(
            path,
            format!("{what} {port} is out of range; use a number in 1..65535"),
        );
    }
}

fn check_int_or_name(errs: &mut Errs, path: &str, what: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => check_port_number(errs, path, what, *n),
        IntOrString::String(s) => {
            if !is_iana_svc_name(s) {
                errs.push(
                    path,
                    format!(
                        "{what} {s:?} is not a valid port name; use a number in 1..65535 or an \
                         IANA_SVC_NAME (at most 15 lower-case letters, digits and '-', with at \
                         least one letter, e.g. \"http\")"
                    ),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------------------------

const TYPES: [&str; 3] = ["ClusterIP", "NodePort", "LoadBalancer"];

/// Every problem of `new` (and of the update from `old`, when given). Empty means valid.
pub fn validate(
    new: &ServiceWithHealthchecks,
    old: Option<&ServiceWithHealthchecks>,
) -> Vec<FieldError> {
    let mut errs = Errs(Vec::new());
    match new.metadata.name.as_deref() {
        Some(name) if is_dns1035_label(name) => {}
        Some(name) => errs.push(
            "metadata.name",
            format!(
                "{name:?} is not a valid Service name; use at most 63 lower-case letters, digits \
                 and '-', starting with a letter and ending with a letter or digit (e.g. \"web\")"
            ),
        ),
        None => {
            if new.metadata.generate_name.is_none() {
                errs.push("metadata.name", "name is required; set metadata.name");
            }
        }
    }
    validate_spec(&mut errs, &new.spec);
    let v1beta1_only = crate::conversion::spec_annotation_bytes(&new.spec);
    if v1beta1_only > crate::conversion::SPEC_ANNOTATION_BUDGET {
        errs.push(
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
        );
    }
    if let Some(old) = old {
        validate_update(&mut errs, &new.spec, &old.spec);
    }
    errs.0
}

fn validate_update(
    errs: &mut Errs,
    new: &v1beta1::ServiceWithHealthchecksSpec,
    old: &v1beta1::ServiceWithHealthchecksSpec,
) {
    let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if let Some(old_ip) = set(&old.cluster_ip)
        && set(&new.cluster_ip) != Some(old_ip.clone())
    {
        errs.push(
            "spec.clusterIP",
            format!(
                "clusterIP is immutable once set: it was {old_ip:?}; keep \
                 spec.clusterIP: {old_ip:?} (delete and recreate the object to change it)"
            ),
        );
    }
    if let (Some(old_ips), Some(new_ips)) = (&old.cluster_ips, &new.cluster_ips)
        && let (Some(o), Some(n)) = (old_ips.first(), new_ips.first())
        && !o.is_empty()
        && o != n
    {
        errs.push(
            "spec.clusterIPs[0]",
            format!("the primary clusterIP is immutable: it was {o:?}; keep it as the first entry"),
        );
    }
}

fn validate_spec(errs: &mut Errs, spec: &v1beta1::ServiceWithHealthchecksSpec) {
    let type_ = spec.service_type();
    match type_ {
        t if TYPES.contains(&t) => {}
        "ExternalName" => errs.push(
            "spec.type",
            "type ExternalName is not supported: a ServiceWithHealthchecks publishes probed pod \
             endpoints and an ExternalName Service has none; use ClusterIP, NodePort or \
             LoadBalancer (or a plain Service for ExternalName)",
        ),
        t => errs.push(
            "spec.type",
            format!("unsupported type {t:?}; use one of ClusterIP, NodePort, LoadBalancer"),
        ),
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let node_ports_allowed = matches!(type_, "NodePort" | "LoadBalancer");

    validate_ports(errs, spec, headless, node_ports_allowed);
    validate_addresses(errs, spec, headless, type_);

    if let Some(sel) = &spec.selector {
        for (k, v) in sel {
            let path = format!("spec.selector[{k:?}]");
            if !is_qualified_name(k) {
                errs.push(
                    path.clone(),
                    format!(
                        "{k:?} is not a valid label key; use [prefix/]name with a name of at \
                         most 63 alphanumerics, '-', '_' or '.' (e.g. \"app\" or \
                         \"example.com/app\")"
                    ),
                );
            }
            if !is_label_value(v) {
                errs.push(
                    path,
                    format!(
                        "{v:?} is not a valid label value; use at most 63 alphanumerics, '-', \
                         '_' or '.', starting and ending with an alphanumeric"
                    ),
                );
            }
        }
    }

    match spec.session_affinity.as_deref() {
        None | Some("None") | Some("ClientIP") => {}
        Some(other) => errs.push(
            "spec.sessionAffinity",
            format!("unsupported value {other:?}; use ClientIP or None"),
        ),
    }
    if let Some(cfg) = &spec.session_affinity_config {
        if spec.session_affinity.as_deref() != Some("ClientIP") {
            errs.push(
                "spec.sessionAffinityConfig",
                "sessionAffinityConfig is only used with sessionAffinity: ClientIP; set \
                 sessionAffinity: ClientIP or remove sessionAffinityConfig",
            );
        }
        if let Some(t) = cfg.client_ip.as_ref().and_then(|c| c.timeout_seconds)
            && !(1..=86400).contains(&t)
        {
            errs.push(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                format!("{t} is out of range; use 1..86400 seconds"),
            );
        }
    }
    for (field, value) in [
        ("spec.externalTrafficPolicy", &spec.external_traffic_policy),
        ("spec.internalTrafficPolicy", &spec.internal_traffic_policy),
    ] {
        if let Some(v) = value
            && v != "Cluster"
            && v != "Local"
        {
            errs.push(
                field,
                format!("unsupported value {v:?}; use Cluster or Local"),
            );
        }
    }
    if spec.external_traffic_policy.is_some() && !node_ports_allowed {
        errs.push(
            "spec.externalTrafficPolicy",
            format!(
                "externalTrafficPolicy may only be set when type is NodePort or LoadBalancer \
                 (type is {type_}); remove it or change spec.type"
            ),
        );
    }
    if let Some(p) = spec.health_check_node_port {
        if !(type_ == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")) {
            errs.push(
                "spec.healthCheckNodePort",
                "healthCheckNodePort may only be set with type LoadBalancer and \
                 externalTrafficPolicy Local; remove it or change those fields",
            );
        }
        check_port_number(errs, "spec.healthCheckNodePort", "healthCheckNodePort", p);
    }
    if spec.allocate_load_balancer_node_ports.is_some() && type_ != "LoadBalancer" {
        errs.push(
            "spec.allocateLoadBalancerNodePorts",
            "allocateLoadBalancerNodePorts may only be set when type is LoadBalancer; remove it",
        );
    }
    if let Some(class) = &spec.load_balancer_class {
        if type_ != "LoadBalancer" {
            errs.push(
                "spec.loadBalancerClass",
                "loadBalancerClass may only be set when type is LoadBalancer; remove it",
            );
        }
        if !is_qualified_name(class) {
            errs.push(
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
        Some(other) => errs.push(
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
                errs.push(path, format!("unsupported family {f:?}; use IPv4 or IPv6"));
            } else if !seen.insert(f) {
                errs.push(path, format!("{f} is listed twice; list each family once"));
            }
        }
        if fams.len() > 2 {
            errs.push(
                "spec.ipFamilies",
                format!(
                    "{} families given; list at most two (IPv4, IPv6)",
                    fams.len()
                ),
            );
        }
        if fams.len() == 2 && spec.ip_family_policy.as_deref() == Some("SingleStack") {
            errs.push(
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
        errs.push(
            "spec.trafficDistribution",
            format!("unsupported value {td:?}; use PreferClose, PreferSameZone or PreferSameNode"),
        );
    }

    if let Some(hc) = &spec.healthcheck {
        validate_healthcheck(errs, spec, hc);
    }
}

fn validate_ports(
    errs: &mut Errs,
    spec: &v1beta1::ServiceWithHealthchecksSpec,
    headless: bool,
    node_ports_allowed: bool,
) {
    let ports = spec.ports();
    if ports.is_empty() && !headless {
        errs.push(
            "spec.ports",
            "at least one port is required (only a headless service, clusterIP: None, may have \
             none); add e.g. spec.ports: [{port: 80, targetPort: 8080}]",
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
                    errs.push(
                        format!("{path}.name"),
                        format!(
                            "{n:?} is not a valid port name; use a DNS label: at most 63 \
                             lower-case letters, digits and '-', starting and ending with a \
                             letter or digit"
                        ),
                    );
                }
                if let Some(first) = names.insert(n.to_string(), i) {
                    errs.push(
                        format!("{path}.name"),
                        format!(
                            "duplicate port name {n:?} (also spec.ports[{first}]); give every \
                             port a unique name"
                        ),
                    );
                }
            }
            _ if ports.len() > 1 => errs.push(
                format!("{path}.name"),
                "name is required when there is more than one port; set a unique DNS label \
                 such as \"http\"",
            ),
            _ => {}
        }
        check_port_number(errs, &format!("{path}.port"), "port", p.port);
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
            errs.push(
                format!("{path}.protocol"),
                format!("unsupported protocol {protocol:?}; use TCP, UDP or SCTP"),
            );
        }
        if let Some(first) = keys.insert((p.port, protocol.to_string()), i) {
            errs.push(
                path.clone(),
                format!(
                    "duplicate port {}/{protocol} (also spec.ports[{first}]); each port and \
                     protocol pair may appear once",
                    p.port
                ),
            );
        }
        if let Some(tp) = &p.target_port {
            check_int_or_name(errs, &format!("{path}.targetPort"), "targetPort", tp);
        }
        if let Some(np) = p.node_port.filter(|np| *np != 0) {
            let np_path = format!("{path}.nodePort");
            if !node_ports_allowed {
                errs.push(
                    np_path.clone(),
                    "nodePort may only be set when type is NodePort or LoadBalancer; remove \
                     nodePort or change spec.type",
                );
            }
            check_port_number(errs, &np_path, "nodePort", np);
            if let Some(first) = node_ports.insert((np, protocol.to_string()), i) {
                errs.push(
                    np_path,
                    format!(
                        "duplicate nodePort {np}/{protocol} (also spec.ports[{first}]); use a \
                         different nodePort or leave it unset to allocate one"
                    ),
                );
            }
        }
        if let Some(ap) = &p.app_protocol
            && !is_qualified_name(ap)
        {
            errs.push(
                format!("{path}.appProtocol"),
                format!(
                    "{ap:?} is not a valid appProtocol; use an IANA service name (e.g. \"http\") \
                     or a prefixed name (e.g. \"kubernetes.io/h2c\")"
                ),
            );
        }
    }
}

fn validate_addresses(
    errs: &mut Errs,
    spec: &v1beta1::ServiceWithHealthchecksSpec,
    headless: bool,
    type_: &str,
) {
    let check_ip = |errs: &mut Errs, path: &str, ip: &str, allow_none: bool| {
        if (allow_none && ip == "None") || ip.is_empty() {
            return;
        }
        if ip.parse::<IpAddr>().is_err() {
            errs.push(
                path,
                format!(
                    "{ip:?} is not a valid IP address; use an IPv4 or IPv6 address{}",
                    if allow_none {
                        ", \"None\" for a headless service, or leave it unset to allocate one"
                    } else {
                        ""
                    }
                ),
            );
        }
    };
    if let Some(ip) = &spec.cluster_ip {
        check_ip(errs, "spec.clusterIP", ip, true);
    }
    if headless && type_ != "ClusterIP" {
        errs.push(
            "spec.clusterIP",
            format!(
                "clusterIP None (headless) requires type ClusterIP (type is {type_}); change \
                 spec.type or remove clusterIP"
            ),
        );
    }
    if let Some(ips) = &spec.cluster_ips {
        for (i, ip) in ips.iter().enumerate() {
            check_ip(errs, &format!("spec.clusterIPs[{i}]"), ip, i == 0);
        }
        if ips.len() > 2 {
            errs.push(
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
            errs.push(
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
            errs.push(
                "spec.clusterIPs[1]",
                "the two clusterIPs must be of different families (one IPv4, one IPv6)",
            );
        }
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            errs.push(
                format!("spec.externalIPs[{i}]"),
                format!("{ip:?} is not a valid IP address; use an IPv4 or IPv6 address"),
            );
        }
    }
    if let Some(ip) = &spec.load_balancer_ip {
        check_ip(errs, "spec.loadBalancerIP", ip, false);
    }
    for (i, r) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        if !is_cidr(r.trim()) {
            errs.push(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                format!("{r:?} is not a CIDR; use e.g. \"10.0.0.0/8\" or \"2001:db8::/32\""),
            );
        }
    }
}

fn validate_healthcheck(
    errs: &mut Errs,
    spec: &v1beta1::ServiceWithHealthchecksSpec,
    hc: &v1beta1::Healthcheck,
) {
    if let Some(d) = hc.initial_delay_seconds
        && !(0..=MAX_SECONDS).contains(&d)
    {
        errs.push(
            "spec.healthcheck.initialDelaySeconds",
            format!("{d} is out of range; use 0..{MAX_SECONDS} seconds"),
        );
    }
    if let Some(p) = hc.period_seconds
        && !(1..=MAX_SECONDS).contains(&p)
    {
        errs.push(
            "spec.healthcheck.periodSeconds",
            format!("{p} is out of range; use 1..{MAX_SECONDS} seconds"),
        );
    }
    if let Some(f) = &hc.fail_open
        && !(1..=100).contains(&f.min_passing_percent)
    {
        errs.push(
            "spec.healthcheck.failOpen.minPassingPercent",
            format!(
                "{} is out of range; use a percentage in 1..100",
                f.min_passing_percent
            ),
        );
    }
    let probes = hc.probes.as_deref().unwrap_or_default();
    if probes.len() > MAX_PROBES {
        errs.push(
            "spec.healthcheck.probes",
            format!("{} probes given; use at most {MAX_PROBES}", probes.len()),
        );
    }
    let mut names = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        let path = format!("spec.healthcheck.probes[{i}]");
        if !is_dns1123_label(&p.name) {
            errs.push(
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
            errs.push(
                format!("{path}.name"),
                format!(
                    "duplicate probe name {:?} (also spec.healthcheck.probes[{first}]); give \
                     every probe a unique name",
                    p.name
                ),
            );
        }
        validate_probe(errs, spec, hc, &path, p);
    }
}

fn validate_probe(
    errs: &mut Errs,
    _spec: &v1beta1::ServiceWithHealthchecksSpec,
    hc: &v1beta1::Healthcheck,
    path: &str,
    p: &Probe,
) {
    let present = [
        (ProbeMode::Http, p.http.is_some()),
        (ProbeMode::Tcp, p.tcp.is_some()),
        (ProbeMode::PostgreSql, p.postgre_sql.is_some()),
        (ProbeMode::Grpc, p.grpc.is_some()),
    ];
    let mode = p.mode;
    for (m, set) in present {
        if m == mode && !set {
            errs.push(
                path,
                format!(
                    "mode is {mode} but field {f} is missing; add {path}.{f}",
                    f = m.field()
                ),
            );
        } else if m != mode && set {
            errs.push(
                format!("{path}.{}", m.field()),
                format!(
                    "mode is {mode} but field {} is set; remove it (only {} is used) or change \
                     mode to {m}",
                    m.field(),
                    mode.field()
                ),
            );
        }
    }
    for (field, value, min) in [
        ("timeoutSeconds", p.timeout_seconds, 1),
        ("successThreshold", p.success_threshold, 1),
        ("failureThreshold", p.failure_threshold, 1),
        ("periodSeconds", p.period_seconds, 1),
        ("initialDelaySeconds", p.initial_delay_seconds, 0),
    ] {
        if let Some(v) = value
            && (v < min || v > MAX_SECONDS)
        {
            errs.push(
                format!("{path}.{field}"),
                format!("{v} is out of range; use {min}..{MAX_SECONDS}"),
            );
        }
    }
    let period = crate::defaults::effective_period_seconds(hc, p);
    let timeout = crate::defaults::effective_timeout_seconds(p);
    if timeout > period && period >= 1 {
        errs.push(
            format!("{path}.timeoutSeconds"),
            format!(
                "timeoutSeconds ({timeout}) exceeds the probe period ({period} s); use a timeout \
                 of at most {period} or a longer periodSeconds"
            ),
        );
    }

    if let Some(h) = &p.http {
        let hp = format!("{path}.http");
        check_int_or_name(errs, &format!("{hp}.port"), "port", &h.port);
        if let Some(pa) = &h.path {
            if !pa.starts_with('/') {
                errs.push(
                    format!("{hp}.path"),
                    format!("path {pa:?} must start with '/'; use \"/{pa}\""),
                );
            }
            if pa.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errs.push(
                    format!("{hp}.path"),
                    "path must not contain spaces or control characters; percent-encode them \
                     (e.g. %20)",
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
            if !ok {
                errs.push(
                    format!("{hp}.host"),
                    format!(
                        "{host:?} is not a valid host name; use a DNS name such as \
                         \"app.example.com\" or an IP address"
                    ),
                );
            }
        }
        for (j, header) in h.http_headers.iter().flatten().enumerate() {
            if !is_http_token(&header.name) {
                errs.push(
                    format!("{hp}.httpHeaders[{j}].name"),
                    format!(
                        "{:?} is not a valid header name; use letters, digits and \
                         !#$%&'*+-.^_`|~ only (e.g. \"X-Probe\")",
                        header.name
                    ),
                );
            }
            if header
                .value
                .chars()
                .any(|c| c == '\r' || c == '\n' || c == '\0')
            {
                errs.push(
                    format!("{hp}.httpHeaders[{j}].value"),
                    "header value must not contain CR, LF or NUL; put it on one line",
                );
            }
        }
        for (j, s) in h.expected_statuses.iter().flatten().enumerate() {
            if let Err(why) = parse_status_range(s) {
                errs.push(
                    format!("{hp}.expectedStatuses[{j}]"),
                    format!(
                        "{s:?} is not a valid status or range ({why}); use a code like \"200\" \
                         or a range like \"200-299\" within 100..599"
                    ),
                );
            }
        }
        if let Some(ca) = &h.ca_cert
            && let Err(why) = check_pem_certificates(ca)
        {
            errs.push(
                format!("{hp}.caCert"),
                format!("caCert is not a PEM certificate bundle ({why}); paste the CA certificate(s) in PEM form"),
            );
        }
        if h.body_contains.is_some() && h.method == Some(HttpMethod::Head) {
            errs.push(
                format!("{hp}.bodyContains"),
                "a HEAD response has no body, so bodyContains can never match; use method GET \
                 or remove bodyContains",
            );
        }
    }
    if let Some(t) = &p.tcp {
        check_int_or_name(errs, &format!("{path}.tcp.port"), "port", &t.port);
    }
    if let Some(g) = &p.grpc {
        check_int_or_name(errs, &format!("{path}.grpc.port"), "port", &g.port);
        if let Some(s) = &g.service
            && s.chars().any(|c| c.is_control())
        {
            errs.push(
                format!("{path}.grpc.service"),
                "service must not contain control characters; use a name like \
                 \"grpc.health.v1.Health\" or leave it empty for the whole server",
            );
        }
    }
    if let Some(pg) = &p.postgre_sql {
        let pp = format!("{path}.postgreSQL");
        check_int_or_name(errs, &format!("{pp}.port"), "port", &pg.port);
        if let Some(s) = &pg.auth_secret_name
            && !is_dns1123_subdomain(s)
        {
            errs.push(
                format!("{pp}.authSecretName"),
                format!(
                    "{s:?} is not a valid Secret name; use a DNS subdomain (lower-case letters, \
                     digits, '-' and '.', e.g. \"cred-secret\")"
                ),
            );
        }
        if let Some(q) = &pg.query
            && q.trim().is_empty()
        {
            errs.push(
                format!("{pp}.query"),
                "query is empty; use a query returning a boolean, e.g. \"select 1\" or \
                 \"SELECT NOT pg_is_in_recovery()\", or remove the field for the default",
            );
        }
        if let Some(db) = &pg.db_name
            && (db.is_empty() || db.len() > 63 || db.contains('\0'))
        {
            errs.push(
                format!("{pp}.dbName"),
                format!(
                    "{db:?} is not a valid database name; use 1..63 bytes without NUL, or remove \
                     it to use the user name"
                ),
            );
        }
        if let Some(tls) = &pg.tls {
            if let Some(ca) = &tls.ca_cert
                && let Err(why) = check_pem_certificates(ca)
            {
                errs.push(
                    format!("{pp}.tls.caCert"),
                    format!("caCert is not a PEM certificate bundle ({why}); paste the CA certificate(s) in PEM form"),
                );
            }
            if let Some(sn) = &tls.server_name
                && !is_dns1123_subdomain(&sn.to_ascii_lowercase())
                && sn.parse::<IpAddr>().is_err()
            {
                errs.push(
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
                errs.push(
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

/// Soft issues to return as admission warnings.
pub fn warnings(new: &ServiceWithHealthchecks) -> Vec<String> {
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

/// Validate raw JSON objects of either served version (what an AdmissionReview carries): both
/// are converted to v1beta1 first. A decoding failure is reported as one error at the root.
pub fn validate_json(new: serde_json::Value, old: Option<serde_json::Value>) -> Vec<FieldError> {
    let decode = |v: serde_json::Value| {
        crate::conversion::to_v1beta1(v).map_err(|e| FieldError {
            path: "<object>".into(),
            message: format!("{e}; send a ServiceWithHealthchecks matching the CRD schema"),
        })
    };
    let new = match decode(new) {
        Ok(n) => n,
        Err(e) => return vec![e],
    };
    let old = old.and_then(|o| decode(o).ok());
    validate(&new, old.as_ref())
}
