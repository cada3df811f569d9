//! Opening a WebSocket (`ws://` or `wss://` through rustls) to a Pusher
//! endpoint, split into a reader task and a writer the client loop owns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError, WebSocketWrite, handshake};
use http_body_util::Empty;
use hyper::header;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::WriteHalf;

use crate::{NetError, TrustRoots};
use sealcast_core::protocol::handshake::path as handshake_path;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses `ws://HOST[:PORT]` or `wss://HOST[:PORT]` (a path is ignored:
    /// the Pusher path `/app/KEY` is added).
    pub fn parse(url: &str) -> Result<Endpoint, NetError> {
        let bad = |reason| NetError::BadUrl { url: url.to_owned(), reason };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(bad("it must start with ws:// or wss://"));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            // [IPv6]:port
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("unclosed ["))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint { tls, host: host.to_owned(), port })
    }
}

/// What the reader task reports.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame.
    Text(String),
    /// A WebSocket ping to answer.
    Ping(Vec<u8>),
    /// The connection ended (close code, reason).
    Closed(Option<u16>, String),
}

type Stream = TokioIo<Upgraded>;

/// The writing half of an open socket.
pub struct Writer {
    inner: WebSocketWrite<WriteHalf<Stream>>,
}

impl Writer {
    /// Sends a text frame.
    pub async fn text(&mut self, text: &str) -> Result<(), WebSocketError> {
        self.inner.write_frame(Frame::text(Payload::Borrowed(text.as_bytes()))).await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: Vec<u8>) -> Result<(), WebSocketError> {
        self.inner.write_frame(Frame::pong(Payload::Owned(payload))).await
    }

    /// Sends a close frame.
    pub async fn close(&mut self) {
        let _ = self.inner.write_frame(Frame::close(1000, b"")).await;
    }
}

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

/// Why a connection attempt failed (reported to the machine as the
/// close reason; the machine retries with backoff).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// TCP connect failed (caused by: network or a server not listening).
    #[error("connect {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake request could not be built (caused by: the app key
    /// or host).
    #[error("handshake request: {0}")]
    Request(hyper::http::Error),
    /// The host is not a valid TLS server name (caused by: the URL).
    #[error("invalid TLS server name {0}")]
    TlsName(String),
    /// TLS failed (caused by: certificates or network).
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        /// `host:port`.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The WebSocket upgrade failed (caused by: the server refused, or it
    /// is not a sealcast/Pusher server).
    #[error("WebSocket handshake with {authority}: {source}")]
    Handshake {
        /// `host:port`.
        authority: String,
        /// Why.
        source: fastwebsockets::WebSocketError,
    },
    /// Nothing answered within the connect timeout.
    #[error("connect timed out after {0:?}")]
    TimedOut(Duration),
}

/// How the socket is secured: plain for `ws://`, TLS with its trust for
/// `wss://` (built once per client: [`Transport::for_endpoint`]).
#[derive(Debug, Clone)]
pub enum Transport {
    /// `ws://`.
    Plain,
    /// `wss://`, verified by this configuration.
    Tls(Arc<rustls::ClientConfig>),
}

impl Transport {
    /// The transport `endpoint` needs, trusting `trust` plus `extra_roots`.
    pub fn for_endpoint(
        endpoint: &Endpoint,
        trust: TrustRoots,
        extra_roots: &[Vec<u8>],
    ) -> Result<Transport, NetError> {
        if !endpoint.tls {
            return Ok(Transport::Plain);
        }
        Ok(Transport::Tls(tls_config(trust, extra_roots)?))
    }
}

/// Opens the socket for app `key` and starts a reader task sending to
/// `incoming`.
pub async fn open(
    endpoint: &Endpoint,
    key: &str,
    transport: &Transport,
    incoming: mpsc::UnboundedSender<Incoming>,
    timeout: Duration,
) -> Result<Writer, OpenError> {
    let authority = format!("{}:{}", endpoint.host, endpoint.port);
    let connect = async {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| OpenError::Connect { authority: authority.clone(), source })?;
        tcp.set_nodelay(true)
            .map_err(|source| OpenError::Connect { authority: authority.clone(), source })?;
        let request = hyper::Request::builder()
            .method("GET")
            .uri(handshake_path(key, "sealcast-rust", env!("CARGO_PKG_VERSION")))
            .header(header::HOST, &authority)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("Sec-WebSocket-Key", handshake::generate_key())
            .header("Sec-WebSocket-Version", "13")
            .body(Empty::<Bytes>::new())
            .map_err(OpenError::Request)?;
        let ws = match transport {
            Transport::Tls(tls) => {
                let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                    .map_err(|_| OpenError::TlsName(endpoint.host.clone()))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|source| OpenError::Tls { authority: authority.clone(), source })?;
                handshake::client(&SpawnExecutor, request, stream).await
            }
            Transport::Plain => handshake::client(&SpawnExecutor, request, tcp).await,
        }
        .map_err(|source| OpenError::Handshake { authority: authority.clone(), source })?;
        Ok::<_, OpenError>(ws.0)
    };
    let ws = tokio::time::timeout(timeout, connect).await.map_err(|_| OpenError::TimedOut(timeout))??;
    let (read, write) = tokio::io::split(ws.into_inner());
    let (mut reader, writer) = fastwebsockets::after_handshake_split(read, write, Role::Client);
    // Pings and closes are answered by the client loop through the writer.
    reader.set_auto_pong(false);
    reader.set_auto_close(false);
    tokio::spawn(async move {
        let mut no_send = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
        let mut collector = fastwebsockets::FragmentCollectorRead::new(reader);
        loop {
            let report = match collector.read_frame(&mut no_send).await {
                Ok(frame) => match frame.opcode {
                    OpCode::Text => Incoming::Text(String::from_utf8_lossy(&frame.payload).into_owned()),
                    OpCode::Ping => Incoming::Ping(frame.payload.to_vec()),
                    OpCode::Close => {
                        let payload = &frame.payload[..];
                        let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        let reason =
                            String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                        let _ = incoming.send(Incoming::Closed(code, reason));
                        return;
                    }
                    _ => continue,
                },
                Err(err) => {
                    let _ = incoming.send(Incoming::Closed(None, err.to_string()));
                    return;
                }
            };
            if incoming.send(report).is_err() {
                return; // the client loop is gone
            }
        }
    });
    Ok(Writer { inner: writer })
}

/// A rustls configuration trusting `trust` plus `extra_roots` (DER
/// certificates, e.g. a private CA).
pub fn tls_config(trust: TrustRoots, extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, NetError> {
    let extra = |index: usize| rustls::pki_types::CertificateDer::from(extra_roots[index].clone());
    // Checked one by one first, so a bad one is named whatever the trust.
    for index in 0..extra_roots.len() {
        rustls::RootCertStore::empty()
            .add(extra(index))
            .map_err(|source| NetError::BadRootCertificate { index, source })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(NetError::Tls)?;
    let config = match trust {
        TrustRoots::Platform => {
            let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
                (0..extra_roots.len()).map(extra),
                provider,
            )
            .map_err(NetError::PlatformTrust)?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        TrustRoots::Bundled => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for index in 0..extra_roots.len() {
                roots.add(extra(index)).map_err(|source| NetError::BadRootCertificate { index, source })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("ws://127.0.0.1:6001").unwrap(),
            Endpoint { tls: false, host: "127.0.0.1".into(), port: 6001 }
        );
        assert_eq!(
            Endpoint::parse("wss://rt.example.com/app/x").unwrap(),
            Endpoint { tls: true, host: "rt.example.com".into(), port: 443 }
        );
        assert!(Endpoint::parse("http://x").is_err());
        assert!(Endpoint::parse("ws://:80").is_err());
        assert!(Endpoint::parse("ws://h:notaport").is_err());
    }
}
