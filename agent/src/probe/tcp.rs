//! TCP probe: connect, then close. Nothing is written: a payload makes servers such as
//! PostgreSQL log errors (`invalid length of startup packet`), a bare connect logs nothing.

use tokio::net::TcpStream;

use super::{Attempt, ProbeTarget, describe_io};

/// Opens a TCP connection to the target (no DNS: the target is an IP). Nagle is disabled: probe
/// requests are written in one go and waiting for an ACK would only add latency.
pub(crate) async fn connect(target: ProbeTarget) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(target.socket_addr())
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                super::note_refused();
            }
            describe_io(&e)
        })?;
    // Not fatal: only affects latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub(crate) async fn probe(target: ProbeTarget) -> Attempt {
    let stream = connect(target).await?;
    drop(stream);
    Ok("connected".to_string())
}
