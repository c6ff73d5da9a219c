//! Raw HTTP/1.1 over a plain TCP socket, for requests no well-behaved client would send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a raw exchange may take before the test calls the server stuck.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// A response read off the wire.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Fail the test unless the answer is a 200, showing the body if it is not.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
    }

    /// The body as JSON; panics with the body's text if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "a JSON body, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// `http://127.0.0.1:port` → `127.0.0.1:port`.
pub fn socket_address(base_url: &str) -> String {
    base_url.trim_start_matches("http://").to_string()
}

/// Connect with read and write timeouts, so a stuck server fails the test instead of hanging it.
pub fn connect(base_url: &str) -> TcpStream {
    let stream = TcpStream::connect(socket_address(base_url)).expect("the server accepts");
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    stream.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
    stream
}

/// Send `request` as is on a new connection and read one response.
pub fn exchange(base_url: &str, request: &[u8]) -> RawReply {
    let mut stream = connect(base_url);
    // The server may answer and close before it has read everything (a refused head); a
    // failed write is then expected, and the answer is still there to read.
    let _ = stream.write_all(request);
    read_reply(&mut stream).unwrap_or_else(|| panic!("no HTTP answer to {} bytes", request.len()))
}

/// Read one response: its head, then `Content-Length` bytes of body (or up to EOF). `None`
/// when the connection closed before a status line arrived.
pub fn read_reply(stream: &mut TcpStream) -> Option<RawReply> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0_u8; 16 * 1024];
    let head_end = loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            break end;
        }
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "the answer's head never came"
        );
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse::<u16>()
        .ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let mut body = received[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());
    while length.is_none_or(|length| body.len() < length) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => body.extend_from_slice(&chunk[..read]),
        }
    }
    if let Some(length) = length {
        body.truncate(length);
    }
    Some(RawReply {
        status,
        headers,
        body,
    })
}

/// Whether the server closed `stream` within `within` (reads EOF or a reset), without sending
/// anything more than an optional error response.
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut sink = [0_u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// A request with a body and `Connection: close`; `headers` are whole lines without CRLF.
pub fn request_bytes(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for header in headers {
        bytes.push_str(header);
        bytes.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        bytes.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    bytes.push_str("\r\n");
    let mut bytes = bytes.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `Authorization: Bearer <key>`, as a header line.
pub fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

/// `Authorization: Basic <key:>`, as Omise's clients send it.
pub fn basic(key: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Authorization: Basic {encoded}")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
