//! Waiting for the registry to answer again after `--registry-restart`.
//!
//! A plain HTTP/1.0 `GET /v2/` over a TCP socket: any HTTP status (200, or 401 behind
//! auth) means the registry is serving. `https://` URLs are only checked for a TCP
//! connection (stowage carries no TLS client outside the object-store feature).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

fn probe(url: &str) -> Result<(), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("--registry-url {url:?}: not http:// or https://"));
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let hostport = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{}", if tls { 443 } else { 80 })
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("{hostport}: {e}"))?;
    if tls {
        return Ok(());
    }
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .map_err(|e| format!("{hostport}: {e}"))?;
    if head.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err(format!("{hostport}: not an HTTP answer"))
    }
}

/// Poll `url` until the registry answers, at most `timeout`.
pub(crate) fn wait_until_up(url: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match probe(url) {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() >= timeout => {
                return Err(format!(
                    "the registry did not answer at {url} within {}s after the restart: {e}",
                    timeout.as_secs()
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
