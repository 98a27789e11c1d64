//! The request shell against real TLS connections on 127.0.0.1: a connection that stalls is
//! dropped after the read timeout, a source cannot hold more connections than its cap, a body
//! over the limit is a JSON 413, the one large-body route takes larger bodies a few at a time,
//! and a client never follows a redirect.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use keyward_service::client::{ClientError, ServiceClient};
use keyward_service::shell::{LargeRoute, ServeOptions, serve_https};
use keyward_service::tls;

/// A server with an echo route and a redirecting one; its address and certificate pin.
fn start(options: ServeOptions) -> (tokio::runtime::Runtime, SocketAddr, [u8; 32]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let certificate = tls::generate_certificate().expect("certificate");
    let pin = tls::parse_pin(&tls::certificate_fingerprint(&certificate.cert_pem).expect("fp"))
        .expect("pin");
    let config = tls::server_config(&certificate.cert_pem, &certificate.key_pem).expect("tls");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("a");
    let app = Router::new()
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .route("/large", post(|body: axum::body::Bytes| async move { body }))
        .route(
            "/moved",
            get(|| async {
                (StatusCode::FOUND, [("location", "https://127.0.0.1:1/elsewhere")]).into_response()
            }),
        );
    runtime.spawn(async move { serve_https(addr, config.config, app, options).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (runtime, addr, pin)
}

/// A TLS connection to the server, trusting its pin.
fn connect(
    addr: SocketAddr,
    pin: [u8; 32],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let (config, _) = tls::pinned_client_config(pin).expect("client config");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("connection");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    rustls::StreamOwned::new(connection, tcp)
}

fn options(read_timeout: Duration, max_connections_per_source: usize) -> ServeOptions {
    ServeOptions {
        read_timeout,
        max_connections_per_source,
        max_body_bytes: 1024,
        large_route: None,
    }
}

#[test]
fn a_connection_stalled_mid_body_is_dropped_after_the_read_timeout() {
    let (_runtime, addr, pin) = start(options(Duration::from_secs(1), 64));
    let mut stream = connect(addr, pin);
    // Headers that promise 500 bytes, then 10 of them, then nothing.
    let head = "POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 500\r\n\r\n0123456789";
    stream.write_all(head.as_bytes()).expect("send");
    stream.flush().expect("flush");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "dropped after {waited:?}, not held");
    assert!(
        waited >= Duration::from_millis(500),
        "held until the timeout, not refused ({waited:?})"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.contains("408"), "a 408 or a closed connection: {text}");
}

#[test]
fn a_source_cannot_hold_more_connections_than_its_cap() {
    let (_runtime, addr, pin) = start(options(Duration::from_secs(10), 3));
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(addr, pin);
        // Complete the handshake, so the connection is really open.
        stream.write_all(b"GET /nothing HTTP/1.1\r\nhost: localhost\r\n\r\n").expect("send");
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).expect("an answer on a held connection");
        held.push(stream);
    }
    let mut fourth = connect(addr, pin);
    let refused =
        fourth.write_all(b"GET /nothing HTTP/1.1\r\nhost: localhost\r\n\r\n").and_then(|()| {
            let mut byte = [0u8; 1];
            fourth.read_exact(&mut byte)
        });
    assert!(refused.is_err(), "a fourth connection from the same source is not served");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect(addr, pin);
    again.write_all(b"GET /nothing HTTP/1.1\r\nhost: localhost\r\n\r\n").expect("send");
    let mut byte = [0u8; 1];
    again.read_exact(&mut byte).expect("served once the others are closed");
}

#[test]
fn an_oversized_body_is_a_json_413_and_a_redirect_is_never_followed() {
    let (runtime, addr, pin) = start(options(Duration::from_secs(10), 64));
    let url = format!("https://{addr}");
    let client = ServiceClient::new("hub", &url, pin, Duration::from_secs(10)).expect("client");
    runtime.block_on(async {
        let big = serde_json::json!({ "blob": "x".repeat(4096) });
        match client.send::<serde_json::Value>(client.post_json("/echo", &big)).await {
            Err(ClientError::Refused { status: 413, code, .. }) => assert_eq!(code, "too-large"),
            other => panic!("expected a JSON 413, got {other:?}"),
        }
        let small = serde_json::json!({ "ok": true });
        let echoed: serde_json::Value =
            client.send(client.post_json("/echo", &small)).await.expect("echo");
        assert_eq!(echoed, small);
        match client.send::<serde_json::Value>(client.get("/moved")).await {
            Err(ClientError::BadAnswer { reason, .. }) => {
                assert!(reason.contains("redirect"), "{reason}")
            }
            other => panic!("expected a refused redirect, got {other:?}"),
        }
    });
}

#[test]
fn the_large_route_takes_larger_bodies_but_only_so_many_at_once() {
    let large = LargeRoute {
        path: "/large",
        max_body_bytes: 8192,
        body_timeout: Duration::from_secs(10),
        at_once: 1,
    };
    let options = ServeOptions { large_route: Some(large), ..options(Duration::from_secs(10), 64) };
    let (runtime, addr, pin) = start(options);
    let url = format!("https://{addr}");
    let client = ServiceClient::new("hub", &url, pin, Duration::from_secs(10)).expect("client");
    let body = serde_json::json!({ "blob": "x".repeat(4096) });
    let status = |path: &'static str, body: serde_json::Value| {
        let client = client.clone();
        runtime.block_on(async move {
            match client.send::<serde_json::Value>(client.post_json(path, &body)).await {
                Ok(_) => 200,
                Err(ClientError::Refused { status, .. }) => status,
                Err(other) => panic!("{other:?}"),
            }
        })
    };
    assert_eq!(status("/large", body.clone()), 200);
    assert_eq!(status("/echo", body.clone()), 413, "other routes keep the service's limit");
    assert_eq!(status("/large", serde_json::json!({ "blob": "x".repeat(9000) })), 413);

    // One upload in progress holds the route's only turn: the next is 429 at once, other
    // routes are served, and the turn comes back when that upload ends.
    let mut held = connect(addr, pin);
    let head = "POST /large HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5000\r\n\r\n0123456789";
    held.write_all(head.as_bytes()).expect("send");
    held.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("/large", body.clone()) != 429 {
        assert!(Instant::now() < deadline, "the held upload never took the turn");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status("/echo", serde_json::json!({ "ok": true })), 200);
    drop(held);
    while status("/large", body.clone()) != 200 {
        assert!(Instant::now() < deadline, "the turn did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_certificate_that_is_not_the_pinned_one_names_both() {
    let (runtime, addr, pin) = start(options(Duration::from_secs(10), 64));
    let mut wrong = pin;
    wrong[0] ^= 0xff;
    let client =
        ServiceClient::new("peer", &format!("https://{addr}"), wrong, Duration::from_secs(5))
            .expect("client");
    runtime.block_on(async {
        match client.send::<serde_json::Value>(client.get("/moved")).await {
            Err(ClientError::PinMismatch { expected, found, .. }) => {
                assert_eq!(expected, keyward_core::fingerprint::colon_hex(&wrong));
                assert_eq!(found, keyward_core::fingerprint::colon_hex(&pin));
            }
            other => panic!("expected a pin mismatch, got {other:?}"),
        }
    });
}
