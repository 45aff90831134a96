//! gRPC health probe: `grpc.health.v1.Health/Check` over plaintext HTTP/2 (h2c with prior
//! knowledge), like the kubelet's gRPC probe: only `SERVING` passes, any error fails, no TLS.
//!
//! The two messages involved are tiny, so they are encoded by hand rather than pulling in a
//! protobuf/gRPC stack:
//! `HealthCheckRequest { string service = 1; }`, `HealthCheckResponse { ServingStatus status = 1; }`.

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Attempt, ProbeTarget, describe_error, tcp};

const PATH: &str = "/grpc.health.v1.Health/Check";
const USER_AGENT: &str = concat!("swh-agent/", env!("CARGO_PKG_VERSION"));
/// A health response is a few bytes; anything bigger than this is not one.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcSpec {
    /// The `service` field of the request; `None`/empty = the server's overall health.
    pub service: Option<String>,
}

pub(crate) async fn probe(spec: &GrpcSpec, target: ProbeTarget) -> Attempt {
    let stream = tcp::connect(target).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| describe_error(&e))?;
    let req = Request::post(format!("http://{target}{PATH}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(header::USER_AGENT, USER_AGENT)
        .body(Full::new(encode_request(
            spec.service.as_deref().unwrap_or(""),
        )))
        .map_err(|e| format!("building request: {e}"))?;
    let exchange = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP/2 call failed: {}", describe_error(&e)))?;
        let (parts, mut body) = resp.into_parts();
        if parts.status != StatusCode::OK {
            return Err(format!("HTTP status {}", parts.status));
        }
        // Trailers-only responses (errors such as UNIMPLEMENTED) carry grpc-status in the headers.
        if let Some(err) = grpc_error(&parts.headers) {
            return Err(err);
        }
        let mut data: Vec<u8> = Vec::new();
        let mut trailers: Option<HeaderMap> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| describe_error(&e))?;
            match frame.into_data() {
                Ok(chunk) => {
                    if data.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err("response too large for a health check".to_string());
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        match &trailers {
            Some(t) => {
                if let Some(err) = grpc_error(t) {
                    return Err(err);
                }
            }
            None if parts.headers.contains_key("grpc-status") => {}
            None => return Err("response ended without grpc-status".to_string()),
        }
        let status = decode_response(&data)?;
        match status {
            1 => Ok("SERVING".to_string()),
            other => Err(serving_status_name(other)),
        }
    };
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

/// `Some(message)` when the headers carry a non-zero `grpc-status`.
fn grpc_error(headers: &HeaderMap) -> Option<String> {
    let code = headers.get("grpc-status")?.to_str().ok()?.trim();
    if code == "0" {
        return None;
    }
    let name = code
        .parse::<u32>()
        .map(grpc_code_name)
        .unwrap_or("invalid grpc-status");
    let message = headers
        .get("grpc-message")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(percent_decode)
        .filter(|m| !m.is_empty());
    Some(match message {
        Some(m) => format!("gRPC {name}: {m}"),
        None => format!("gRPC {name}"),
    })
}

fn encode_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(msg.len() + 5);
    framed.push(0); // not compressed
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    Bytes::from(framed)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Returns the `status` field of a framed `HealthCheckResponse` (0 = UNKNOWN when absent).
fn decode_response(data: &[u8]) -> Result<u64, String> {
    let bad = || "malformed health response".to_string();
    if data.len() < 5 {
        return Err(if data.is_empty() {
            "empty health response".to_string()
        } else {
            bad()
        });
    }
    if data[0] != 0 {
        return Err("compressed health response not supported".to_string());
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let mut msg = data.get(5..5 + len).ok_or_else(bad)?;
    let mut status = 0;
    while msg.has_remaining() {
        let tag = get_varint(&mut msg).ok_or_else(bad)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => status = get_varint(&mut msg).ok_or_else(bad)?,
            (_, 0) => {
                get_varint(&mut msg).ok_or_else(bad)?;
            }
            (_, 1) if msg.remaining() >= 8 => msg.advance(8),
            (_, 5) if msg.remaining() >= 4 => msg.advance(4),
            (_, 2) => {
                let n = get_varint(&mut msg).ok_or_else(bad)? as usize;
                if msg.remaining() < n {
                    return Err(bad());
                }
                msg.advance(n);
            }
            _ => return Err(bad()),
        }
    }
    Ok(status)
}

fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => format!("serving status {other}"),
    }
}

fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown status code",
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
    }

    #[test]
    fn response_decoding() {
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields are skipped.
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]),
            Ok(1)
        );
        assert!(decode_response(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(percent_decode("not%20found"), "not found");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
