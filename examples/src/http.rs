//! Minimal blocking HTTP/1.1: one request per connection, `Content-Length`
//! bodies, form-encoded parameters. Enough for the examples, not more.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A parsed request.
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Query and form-body parameters.
    pub params: HashMap<String, String>,
}

/// Decodes `a=1&b=x%20y`.
pub fn parse_form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a form value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads one request from `stream`.
pub fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0).min(64 * 1024);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = parse_form(query);
    params.extend(parse_form(&String::from_utf8_lossy(&body)));
    Ok(Request { method, path: path.to_owned(), params })
}

/// Writes a JSON response.
pub fn respond(stream: &TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    respond_with(stream, status, "application/json", body.as_bytes())
}

/// Writes a response of `content_type`.
pub fn respond_with(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)
}

/// Why [`call`] got no answer.
#[derive(Debug)]
pub enum CallError {
    /// The base URL is not `http://HOST:PORT`.
    NotHttp,
    /// Connecting, writing or reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotHttp => f.write_str("the backend URL must be http://HOST:PORT"),
            CallError::Io(err) => write!(f, "backend unreachable: {err}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A blocking request to `http://HOST:PORT/path`; returns (status, body).
pub fn call(base: &str, method: &str, path_and_query: &str, form: &str) -> Result<(u16, String), CallError> {
    let authority = base.strip_prefix("http://").ok_or(CallError::NotHttp)?;
    let mut stream = TcpStream::connect(authority.trim_end_matches('/')).map_err(CallError::Io)?;
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    )
    .map_err(CallError::Io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(CallError::Io)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip() {
        let form = format!("a={}&b={}", encode("x y/é"), encode("1.2"));
        let parsed = parse_form(&form);
        assert_eq!(parsed["a"], "x y/é");
        assert_eq!(parsed["b"], "1.2");
        assert_eq!(parse_form("c=%zz")["c"], "%zz");
    }
}
