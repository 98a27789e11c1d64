//! `keyward operator dashboard`: the fleet view (keyward_box::fleet) as a read-only page on
//! 127.0.0.1. Each page load asks the hubs anew with the operator's signed requests: the key
//! stays in this process, on the operator's machine. The server answers `GET /` and nothing
//! else, one request at a time, reads at most 8 KiB of a request within 5 s, and sends a page
//! with no script and no form (its Content-Security-Policy allows none).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use keyward_box::fleet;
use keyward_hub::client::Hubs;
use keyward_service::{SigningIdentity, unix_now};

use crate::exit::{CliResult, usage};

/// Most bytes of a request read.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves the page at `listen` (a loopback address only) until the process is stopped.
pub fn serve(
    ctx: &crate::context::Context,
    listen: SocketAddr,
    hubs: &Hubs,
    operator: &SigningIdentity,
    stale_after: i64,
) -> CliResult {
    if !listen.ip().is_loopback() {
        return Err(usage(format!(
            "the dashboard listens on this machine only (127.0.0.1 or ::1), not {listen}"
        )));
    }
    let listener = TcpListener::bind(listen)
        .map_err(|e| keyward_core::Error::io("cannot listen at", listen.to_string(), e))?;
    ctx.out.line(format!("Fleet dashboard at http://{listen}/ (read-only; Ctrl-C stops it)"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(e) = answer(stream, hubs, operator, stale_after) {
            crate::output::warn(&format!("a page request: {e}"));
        }
    }
    Ok(())
}

/// Reads one request and answers it.
fn answer(
    mut stream: TcpStream,
    hubs: &Hubs,
    operator: &SigningIdentity,
    stale_after: i64,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let first = line.lines().next().unwrap_or("");
    let (status, body) = if first.starts_with("GET / ") {
        match fleet::query(hubs, operator, unix_now(), stale_after) {
            Ok(found) => ("200 OK", fleet::page(&found, unix_now())),
            Err(e) => (
                "502 Bad Gateway",
                format!(
                    "<!doctype html><p>The hubs did not answer: {}</p>",
                    html_escape(&e.to_string())
                ),
            ),
        }
    } else {
        ("404 Not Found", "<!doctype html><p>Only / is here.</p>".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
