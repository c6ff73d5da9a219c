//! Slow and silent clients cannot hold the server: header-read, body-read and idle timeouts close their connections, and the connection limit queues the rest.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::raw_http::{bearer, closed_within, connect, exchange, read_reply, request_bytes};
use common::server::{SECRET_KEY, TestServer};

/// A server with one-second header and body timeouts and a two-second idle timeout.
fn impatient_server(
    max_connections: &str,
    header_timeout_secs: &str,
) -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_args(
        &directory.path().join("data"),
        &[SECRET_KEY],
        &[
            "--header-read-timeout-secs",
            header_timeout_secs,
            "--body-read-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "2",
            "--max-connections",
            max_connections,
        ],
    );
    (directory, server)
}

fn list_charges(server: &TestServer) -> u16 {
    exchange(
        &server.base_url,
        &request_bytes("GET", "/v1/charges", &[&bearer(SECRET_KEY)], b""),
    )
    .status
}

#[test]
fn two_hundred_slow_header_senders_are_all_closed_and_the_server_keeps_serving() {
    let (_directory, server) = impatient_server("64", "1");
    let mut sockets: Vec<_> = (0..200)
        .map(|_| {
            let mut socket = connect(&server.base_url);
            socket
                .write_all(b"POST /v1/charges HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            socket
        })
        .collect();
    // 64 are served at once, each closed a second after it was accepted: about four rounds.
    for (index, socket) in sockets.iter_mut().enumerate() {
        assert!(
            closed_within(socket, Duration::from_secs(15)),
            "slow socket {index} was never closed"
        );
    }
    assert_eq!(list_charges(&server), 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let (_directory, server) = impatient_server("64", "30");
    let mut socket = connect(&server.base_url);
    let request = format!(
        "GET /v1/charges HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n\r\n",
        bearer(SECRET_KEY)
    );
    socket.write_all(request.as_bytes()).unwrap();
    let reply = read_reply(&mut socket).expect("an answer");
    assert_eq!(reply.status, 200);
    // The header timeout is 30 s here, so what closes it is the 2 s idle timeout.
    assert!(closed_within(&mut socket, Duration::from_secs(10)));
}

#[test]
fn a_body_that_never_finishes_gets_408_and_appends_nothing() {
    let (_directory, server) = impatient_server("64", "30");
    let mut socket = connect(&server.base_url);
    let head = format!(
        "POST /v1/charges HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        bearer(SECRET_KEY)
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(b"amount=2000&currency=usd").unwrap();
    let reply = read_reply(&mut socket).expect("an answer");
    assert_eq!(reply.status, 408);
    let error = reply.json()["error"].clone();
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(
        error["message"],
        "The request body did not arrive within 1 s. Send the whole body at once, with a Content-Length that matches it."
    );
    let list = exchange(
        &server.base_url,
        &request_bytes("GET", "/v1/charges", &[&bearer(SECRET_KEY)], b""),
    );
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 0);
}

#[test]
fn at_the_connection_limit_new_clients_wait_until_a_connection_closes() {
    let (_directory, server) = impatient_server("4", "3");
    let silent: Vec<_> = (0..4).map(|_| connect(&server.base_url)).collect();
    // Give the server the moment it needs to accept all four.
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = connect(&server.base_url);
    let request = request_bytes("GET", "/v1/charges", &[&bearer(SECRET_KEY)], b"");
    waiting.write_all(&request).unwrap();
    // While the four silent connections hold every slot, the fifth is not served...
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0_u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served past the connection limit: {early:?}"
    );
    // ...and once the header timeout (3 s) closes them, it is.
    waiting
        .set_read_timeout(Some(common::raw_http::ANSWER_WITHIN))
        .unwrap();
    let reply = read_reply(&mut waiting).expect("an answer once a slot frees");
    assert_eq!(reply.status, 200);
    drop(silent);
}
