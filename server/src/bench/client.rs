//! The bench's clients: a raw Pusher WebSocket subscriber and a keep-alive
//! HTTP API publisher.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, WebSocket, handshake};
use http_body_util::{Empty, Full};
use hyper::client::conn::http1;
use hyper::upgrade::Upgraded;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use sealcast_core::protocol::SubscribeData;
use sealcast_core::protocol::client::Command;
use sealcast_core::protocol::event::{self, FrameView};
use sealcast_core::protocol::handshake::path as handshake_path;
use serde_json::json;
use tokio::net::TcpStream;

use super::Target;
use crate::cli::CliError;
use crate::http::api::signed_query;

/// A connected Pusher client.
pub struct Subscriber {
    pub ws: FragmentCollector<TokioIo<Upgraded>>,
    /// The socket id the server assigned.
    pub socket_id: String,
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

/// A byte stream to the server: TCP, or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the target with Nagle off (over TLS for `wss://`), and
/// its `host:port`.
async fn connect_tcp(target: &Target) -> Result<(Box<dyn Io>, String), CliError> {
    let authority = target.authority()?;
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| CliError::Bench(format!("connect {authority}: {e}")))?;
    stream.set_nodelay(true)?;
    let Some(tls) = target.tls()? else { return Ok((Box::new(stream), authority)) };
    let host = authority.rsplit_once(':').map_or(authority.as_str(), |(host, _)| host).to_owned();
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| CliError::Bench(format!("TLS server name: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, stream)
        .await
        .map_err(|e| CliError::Bench(format!("TLS with {authority}: {e}")))?;
    Ok((Box::new(stream), authority))
}

impl Subscriber {
    /// Connects and waits for `pusher:connection_established`.
    pub async fn connect(target: &Target) -> Result<Subscriber, CliError> {
        let (stream, authority) = connect_tcp(target).await?;
        let request = Request::builder()
            .method("GET")
            .uri(handshake_path(&target.key, "sealcast-bench", "1"))
            .header(header::HOST, &authority)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("Sec-WebSocket-Key", handshake::generate_key())
            .header("Sec-WebSocket-Version", "13")
            .body(Empty::<Bytes>::new())
            .map_err(|e| CliError::Bench(e.to_string()))?;
        let executor = SpawnExecutor;
        let (ws, _): (WebSocket<TokioIo<Upgraded>>, _) = handshake::client(&(executor), request, stream)
            .await
            .map_err(|e| CliError::Bench(format!("websocket handshake: {e}")))?;
        let mut subscriber = Subscriber { ws: FragmentCollector::new(ws), socket_id: String::new() };
        let established = subscriber.wait_for(event::ESTABLISHED).await?;
        let data: serde_json::Value = serde_json::from_str(&established).unwrap_or_default();
        subscriber.socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
        Ok(subscriber)
    }

    /// Subscribes to a public channel and waits for success.
    pub async fn subscribe(&mut self, channel: &str) -> Result<(), CliError> {
        let data = SubscribeData { channel: channel.to_owned(), auth: None, channel_data: None };
        self.send(&Command::Subscribe(data).encode()).await?;
        self.wait_for(event::SUBSCRIPTION_SUCCEEDED).await.map(drop)
    }

    /// Subscribes to a private channel, signing with the app secret.
    pub async fn subscribe_private(&mut self, target: &Target, channel: &str) -> Result<(), CliError> {
        let auth = sealcast_core::protocol::auth::channel_auth(
            &target.key,
            &target.secret,
            &self.socket_id,
            channel,
            None,
        );
        let data = SubscribeData { channel: channel.to_owned(), auth: Some(auth), channel_data: None };
        self.send(&Command::Subscribe(data).encode()).await?;
        self.wait_for(event::SUBSCRIPTION_SUCCEEDED).await.map(drop)
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) -> Result<(), CliError> {
        self.ws
            .write_frame(Frame::text(Payload::Borrowed(text.as_bytes())))
            .await
            .map_err(|e| CliError::Bench(format!("send: {e}")))
    }

    /// The next text frame, parsed.
    pub async fn next_json(&mut self) -> Result<serde_json::Value, CliError> {
        loop {
            let frame = self.ws.read_frame().await.map_err(|e| CliError::Bench(format!("read: {e}")))?;
            match frame.opcode {
                OpCode::Text => {
                    return serde_json::from_slice(&frame.payload)
                        .map_err(|_| CliError::Bench("server sent a non-JSON frame".into()));
                }
                OpCode::Close => return Err(CliError::Bench("the server closed the connection".into())),
                _ => {}
            }
        }
    }

    /// Waits for `event`; returns its `data` when it is a string.
    async fn wait_for(&mut self, event: &str) -> Result<String, CliError> {
        loop {
            let frame = self
                .ws
                .read_frame()
                .await
                .map_err(|e| CliError::Bench(format!("waiting for {event}: {e}")))?;
            if frame.opcode == OpCode::Text {
                let parsed = FrameView::parse(&frame.payload)
                    .map_err(|_| CliError::Bench("server sent a non-JSON frame".into()))?;
                if parsed.event == event {
                    return Ok(parsed.data.map(|d| d.into_owned()).unwrap_or_default());
                }
                if parsed.event == event::ERROR {
                    return Err(CliError::Bench(format!(
                        "server error while waiting for {event}: {}",
                        String::from_utf8_lossy(&frame.payload)
                    )));
                }
            } else if frame.opcode == OpCode::Close {
                return Err(CliError::Bench(format!("closed while waiting for {event}")));
            }
        }
    }
}

/// A keep-alive HTTP/1.1 connection that publishes events.
pub struct Publisher {
    sender: http1::SendRequest<Full<Bytes>>,
    target: Target,
    authority: String,
    /// The server said `connection: close`.
    reconnect: bool,
}

impl Publisher {
    /// Opens the connection.
    pub async fn connect(target: &Target) -> Result<Publisher, CliError> {
        let (stream, authority) = connect_tcp(target).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::Bench(format!("http handshake: {e}")))?;
        let driver: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = conn.await;
        });
        tokio::spawn(driver);
        Ok(Publisher { sender, target: target.clone(), authority, reconnect: false })
    }

    /// Publishes one event; returns the HTTP status. Servers that close
    /// the connection after each response (Sockudo answers the HTTP API
    /// with `connection: close`) get a fresh connection per request; a
    /// transport error gets one reconnect and retry.
    pub async fn publish(&mut self, channel: &str, event: &str, data: &str) -> Result<u16, CliError> {
        if self.reconnect || self.sender.is_closed() {
            *self = Publisher::connect(&self.target).await?;
        }
        match self.publish_once(channel, event, data).await {
            Err(_) => {
                *self = Publisher::connect(&self.target).await?;
                self.publish_once(channel, event, data).await
            }
            outcome => outcome,
        }
    }

    async fn publish_once(&mut self, channel: &str, event: &str, data: &str) -> Result<u16, CliError> {
        let body = json!({"name": event, "channel": channel, "data": data}).to_string();
        let path = format!("/apps/{}/events", self.target.app_id);
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let query = signed_query(
            &self.target.key,
            &self.target.secret,
            "POST",
            &path,
            &[],
            body.as_bytes(),
            timestamp,
        );
        let request = Request::builder()
            .method("POST")
            .uri(format!("{path}?{query}"))
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CliError::Bench(e.to_string()))?;
        self.sender.ready().await.map_err(|e| CliError::Bench(format!("publisher connection: {e}")))?;
        let response =
            self.sender.send_request(request).await.map_err(|e| CliError::Bench(format!("publish: {e}")))?;
        let status = response.status().as_u16();
        self.reconnect = response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        // Drain the small body so the connection can be reused.
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        Ok(status)
    }
}
