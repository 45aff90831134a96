//! HTTP(S) probe, kubelet-style.
//!
//! - One new connection per probe to the pod IP (`Connection: close`, no pool, no proxy, no DNS).
//! - `host` sets the `Host` header and the TLS SNI/verification name; the pod IP is still dialed.
//! - Success: the final status is in `expected_statuses` (200–399 when empty) and, if set, the
//!   first 10 KiB of the body contain `body_contains`. The body never goes into the message.
//! - Redirects (301/302/303/307/308): followed only when they stay on the same host (the probe's
//!   `host` or the pod IP), at most 10, always dialing the pod IP. A redirect to another host is
//!   not followed and the 3xx itself is judged, as the kubelet does (which treats it as success
//!   with a warning under the default 200–399).
//! - HTTPS verifies the certificate by default (system roots, or `ca_pem`);
//!   `insecure_skip_verify` opts out.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;

use super::tls::{self, TlsCache, TlsKey, Verify};
use super::{Attempt, ProbeTarget, describe_error, describe_io, tcp};

/// The kubelet reads at most this much of a probe response body.
pub const MAX_BODY_BYTES: usize = 10 * 1024;
/// The kubelet follows at most this many redirects.
pub const MAX_REDIRECTS: usize = 10;

const USER_AGENT: &str = concat!("swh-agent/", env!("CARGO_PKG_VERSION"));
const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpScheme {
    #[default]
    Http,
    Https,
}

impl HttpScheme {
    fn default_port(self) -> u16 {
        match self {
            HttpScheme::Http => 80,
            HttpScheme::Https => 443,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
}

impl HttpMethod {
    fn to_http(self) -> Method {
        match self {
            HttpMethod::Get => Method::GET,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
            HttpMethod::Patch => Method::PATCH,
        }
    }
}

/// An inclusive range of HTTP status codes; `from == to` for a single code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl StatusRange {
    pub const fn new(from: u16, to: u16) -> Self {
        Self { from, to }
    }

    pub const fn single(code: u16) -> Self {
        Self {
            from: code,
            to: code,
        }
    }

    pub fn contains(&self, code: u16) -> bool {
        self.from <= code && code <= self.to
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// Accepted when a probe lists no statuses (kubelet: `200 <= code < 400`).
pub const DEFAULT_STATUSES: StatusRange = StatusRange::new(200, 399);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSpec {
    pub scheme: HttpScheme,
    pub method: HttpMethod,
    /// Path and optional query; a missing leading `/` is added. Empty means `/`.
    pub path: String,
    /// `Host` header and TLS server name; `None` = the pod IP (`ip:port` in the header).
    pub host: Option<String>,
    /// Extra request headers, in order; repeated names are sent repeatedly. A header named like
    /// a default one (`User-Agent`, `Accept`) replaces it, and an empty value removes it.
    pub headers: Vec<(String, String)>,
    /// Accepted final statuses; empty = 200–399.
    pub expected_statuses: Vec<StatusRange>,
    /// If set, the first 10 KiB of the body must contain this text.
    pub body_contains: Option<String>,
    /// PEM bundle of CAs trusted for HTTPS; `None` = the system roots.
    pub ca_pem: Option<String>,
    pub insecure_skip_verify: bool,
}

impl Default for HttpSpec {
    fn default() -> Self {
        Self {
            scheme: HttpScheme::Http,
            method: HttpMethod::Get,
            path: "/".to_string(),
            host: None,
            headers: Vec::new(),
            expected_statuses: Vec::new(),
            body_contains: None,
            ca_pem: None,
            insecure_skip_verify: false,
        }
    }
}

impl HttpSpec {
    fn status_expected(&self, code: u16) -> bool {
        if self.expected_statuses.is_empty() {
            DEFAULT_STATUSES.contains(code)
        } else {
            self.expected_statuses.iter().any(|r| r.contains(code))
        }
    }

    fn tls_key(&self) -> TlsKey {
        TlsKey {
            verify: if self.insecure_skip_verify {
                Verify::None
            } else {
                Verify::Full
            },
            ca_pem: self.ca_pem.clone(),
            client_cert_pem: None,
            client_key_pem: None,
            alpn: ALPN_HTTP1,
        }
    }

    fn host(&self) -> Option<&str> {
        self.host.as_deref().filter(|h| !h.is_empty())
    }
}

/// One hop of the request chain.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hop {
    scheme: HttpScheme,
    port: u16,
    path: String,
    method: HttpMethod,
    host_header: String,
}

struct Response {
    status: StatusCode,
    location: Option<String>,
    body: Bytes,
}

pub(crate) async fn probe(tls: &TlsCache, spec: &HttpSpec, target: ProbeTarget) -> Attempt {
    let mut hop = Hop {
        scheme: spec.scheme,
        port: target.port,
        path: normalize_path(&spec.path),
        method: spec.method,
        host_header: match spec.host() {
            Some(h) => h.to_string(),
            None => target.to_string(),
        },
    };
    let mut redirects = 0;
    loop {
        let resp = fetch(tls, spec, target.ip, &hop).await?;
        let location = resp
            .location
            .as_deref()
            .filter(|_| is_followed_redirect(resp.status));
        let Some(location) = location else {
            return judge(spec, &resp, None);
        };
        match next_hop(location, &hop, spec.host(), target.ip) {
            Next::Follow(next) => {
                if redirects == MAX_REDIRECTS {
                    return Err(format!("stopped after {MAX_REDIRECTS} redirects"));
                }
                redirects += 1;
                hop = next;
                if matches!(resp.status.as_u16(), 301..=303) && hop.method == HttpMethod::Post
                    || resp.status == StatusCode::SEE_OTHER && hop.method != HttpMethod::Head
                {
                    hop.method = HttpMethod::Get;
                }
            }
            Next::OtherHost(host) => {
                let note = format!("redirect to other host {host} not followed");
                return judge(spec, &resp, Some(note));
            }
            Next::Invalid(why) => {
                return Err(format!("{}, {why}", status_text(resp.status)));
            }
        }
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn judge(spec: &HttpSpec, resp: &Response, note: Option<String>) -> Attempt {
    let mut msg = status_text(resp.status);
    if let Some(note) = note {
        msg.push_str(", ");
        msg.push_str(&note);
    }
    if !spec.status_expected(resp.status.as_u16()) {
        if !spec.expected_statuses.is_empty() {
            let want: Vec<String> = spec
                .expected_statuses
                .iter()
                .map(ToString::to_string)
                .collect();
            msg.push_str(&format!(" (expected {})", want.join(", ")));
        }
        return Err(msg);
    }
    if let Some(needle) = &spec.body_contains
        && !contains(&resp.body, needle.as_bytes())
    {
        return Err(format!(
            "{msg}, body does not contain {needle:?} (first {} KiB read)",
            MAX_BODY_BYTES / 1024
        ));
    }
    Ok(msg)
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn normalize_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn build_request(spec: &HttpSpec, hop: &Hop) -> Result<Request<Empty<Bytes>>, String> {
    let mut req = Request::builder()
        .method(hop.method.to_http())
        .uri(hop.path.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid request path {:?}: {e}", hop.path))?;
    let headers = req.headers_mut();
    let host = HeaderValue::from_str(&hop.host_header)
        .map_err(|_| format!("invalid host {:?}", hop.host_header))?;
    headers.insert(header::HOST, host);
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in &spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        if !replaced.contains(&name) {
            headers.remove(&name);
            replaced.push(name.clone());
        }
        if value.is_empty() {
            continue;
        }
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
        headers.append(name, value);
    }
    // A new connection per probe, like the kubelet (DisableKeepAlives).
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(req)
}

async fn fetch(tls: &TlsCache, spec: &HttpSpec, ip: IpAddr, hop: &Hop) -> Result<Response, String> {
    let req = build_request(spec, hop)?;
    let stream = tcp::connect(ProbeTarget::new(ip, hop.port)).await?;
    match hop.scheme {
        HttpScheme::Http => exchange(TokioIo::new(stream), req).await,
        HttpScheme::Https => {
            let config = tls.get(&spec.tls_key())?;
            let name = tls::server_name(spec.host(), ip)?;
            let stream = TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| describe_io(&e))?;
            exchange(TokioIo::new(stream), req).await
        }
    }
}

/// Sends one request on a fresh connection and reads at most [`MAX_BODY_BYTES`] of the body.
async fn exchange<I>(io: I, req: Request<Empty<Bytes>>) -> Result<Response, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| describe_hyper(&e))?;
    let head_only = req.method() == Method::HEAD;
    let exchange = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| describe_hyper(&e))?;
        let (parts, mut body) = resp.into_parts();
        let mut buf: Vec<u8> = Vec::new();
        while !head_only && buf.len() < MAX_BODY_BYTES {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = MAX_BODY_BYTES - buf.len();
                        buf.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => {
                    return Err(format!("reading body: {}", describe_error(&e)));
                }
            }
        }
        let location = parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Response {
            status: parts.status,
            location,
            body: Bytes::from(buf),
        })
    };
    // Drive the connection and the exchange together in this task: dropping this future (timeout)
    // drops the socket, and nothing outlives the probe.
    tokio::pin!(conn);
    tokio::pin!(exchange);
    let mut conn_done = false;
    loop {
        tokio::select! {
            r = &mut exchange => return r,
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

fn describe_hyper(e: &hyper::Error) -> String {
    if e.is_parse() {
        format!("not a valid HTTP response ({e})")
    } else {
        describe_error(e)
    }
}

enum Next {
    Follow(Hop),
    OtherHost(String),
    Invalid(String),
}

/// Resolves a `Location` against the current hop. Same host = the probe's `host` or the pod IP;
/// whatever it says, the pod IP is what gets dialed.
fn next_hop(location: &str, cur: &Hop, host: Option<&str>, ip: IpAddr) -> Next {
    let location = location.trim();
    let (scheme, rest) = if let Some(rest) = location.strip_prefix("//") {
        (cur.scheme, rest)
    } else if let Some((scheme, rest)) = location.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => HttpScheme::Http,
            "https" => HttpScheme::Https,
            other => return Next::Invalid(format!("redirect to unsupported scheme {other:?}")),
        };
        (scheme, rest)
    } else {
        // Relative reference on the same host.
        let path = if location.starts_with('/') {
            normalize_path(location)
        } else if location.is_empty() {
            cur.path.clone()
        } else {
            let base = cur.path.split('?').next().unwrap_or("/");
            let dir = match base.rfind('/') {
                Some(i) => &base[..=i],
                None => "/",
            };
            normalize_path(&format!("{dir}{location}"))
        };
        return Next::Follow(Hop {
            path,
            ..cur.clone()
        });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (hostname, port) = match split_host_port(authority) {
        Some(hp) => hp,
        None => return Next::Invalid(format!("invalid redirect location {location:?}")),
    };
    let same_host = match hostname.parse::<IpAddr>() {
        Ok(addr) => {
            addr == ip || host.is_some_and(|h| hostname_of(h).eq_ignore_ascii_case(hostname))
        }
        Err(_) => host.is_some_and(|h| hostname_of(h).eq_ignore_ascii_case(hostname)),
    };
    if !same_host {
        return Next::OtherHost(hostname.to_string());
    }
    let path = if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Next::Follow(Hop {
        scheme,
        port: port.unwrap_or(scheme.default_port()),
        path: normalize_path(&path),
        method: cur.method,
        host_header: authority.to_string(),
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host, port).
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some(p.parse().ok()?),
            Some(_) => None,
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            if p.is_empty() {
                Some((h, None))
            } else {
                Some((h, Some(p.parse().ok()?)))
            }
        }
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority, None)),
    }
}

fn hostname_of(host: &str) -> &str {
    split_host_port(host).map(|(h, _)| h).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(path: &str) -> Hop {
        Hop {
            scheme: HttpScheme::Http,
            port: 8080,
            path: path.to_string(),
            method: HttpMethod::Get,
            host_header: "10.0.0.5:8080".to_string(),
        }
    }

    fn ip() -> IpAddr {
        "10.0.0.5".parse().unwrap()
    }

    #[test]
    fn relative_redirects_stay_on_the_pod() {
        let Next::Follow(h) = next_hop("/b?x=1", &hop("/a"), None, ip()) else {
            panic!()
        };
        assert_eq!((h.path.as_str(), h.port), ("/b?x=1", 8080));
        let Next::Follow(h) = next_hop("c", &hop("/a/b?q"), None, ip()) else {
            panic!()
        };
        assert_eq!(h.path, "/a/c");
    }

    #[test]
    fn absolute_redirects_to_the_pod_ip_or_host_are_followed() {
        let Next::Follow(h) = next_hop("https://10.0.0.5:8443/x", &hop("/"), None, ip()) else {
            panic!()
        };
        assert_eq!(
            (h.scheme, h.port, h.path.as_str()),
            (HttpScheme::Https, 8443, "/x")
        );
        let Next::Follow(h) = next_hop(
            "http://App.Example:9000",
            &hop("/"),
            Some("app.example"),
            ip(),
        ) else {
            panic!()
        };
        assert_eq!(
            (h.port, h.path.as_str(), h.host_header.as_str()),
            (9000, "/", "App.Example:9000")
        );
        let Next::Follow(h) =
            next_hop("//app.example/y", &hop("/"), Some("app.example:8080"), ip())
        else {
            panic!()
        };
        assert_eq!((h.port, h.path.as_str()), (80, "/y"));
    }

    #[test]
    fn other_hosts_are_not_followed() {
        assert!(matches!(
            next_hop("http://evil.example/", &hop("/"), None, ip()),
            Next::OtherHost(h) if h == "evil.example"
        ));
        assert!(matches!(
            next_hop(
                "http://10.0.0.6:8080/",
                &hop("/"),
                Some("app.example"),
                ip()
            ),
            Next::OtherHost(_)
        ));
        assert!(matches!(
            next_hop("ftp://10.0.0.5/", &hop("/"), None, ip()),
            Next::Invalid(_)
        ));
    }

    #[test]
    fn ipv6_authorities_parse() {
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", Some(80))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("a:b:c"), None);
        assert_eq!(split_host_port("a.example"), Some(("a.example", None)));
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert!(matches!(
            next_hop("http://[fd00::5]:81/z", &hop("/"), None, v6),
            Next::Follow(h) if h.port == 81
        ));
    }

    #[test]
    fn statuses_default_to_200_399() {
        let spec = HttpSpec::default();
        assert!(spec.status_expected(200) && spec.status_expected(399));
        assert!(!spec.status_expected(199) && !spec.status_expected(400));
        let spec = HttpSpec {
            expected_statuses: vec![StatusRange::single(204), StatusRange::new(500, 503)],
            ..Default::default()
        };
        assert!(spec.status_expected(204) && spec.status_expected(502));
        assert!(!spec.status_expected(200));
    }

    #[test]
    fn header_overrides_and_removal() {
        let spec = HttpSpec {
            headers: vec![
                ("User-Agent".into(), "custom".into()),
                ("Accept".into(), String::new()),
                ("X-A".into(), "1".into()),
                ("X-A".into(), "2".into()),
            ],
            ..Default::default()
        };
        let req = build_request(&spec, &hop("/")).unwrap();
        assert_eq!(req.headers()[header::USER_AGENT], "custom");
        assert!(req.headers().get(header::ACCEPT).is_none());
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(req.headers()[header::HOST], "10.0.0.5:8080");
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("healthz"), "/healthz");
        assert_eq!(normalize_path("/a?b#frag"), "/a?b");
    }
}
