//! # sealcast-net
//!
//! The client over a real WebSocket: [`Client`] is a thin
//! tokio driver of a [`ClientMachine`]. One task runs one loop over the
//! socket, the timer, the app's commands and the answers of the app's
//! callbacks; it carries out what the machine transmits, answers its
//! requests (`NeedAuthorization`, `NeedKey`) by calling the app's
//! [`Authorizer`] and [`KeyProvider`] on tokio's blocking pool, and hands
//! every other event to the app. It never looks inside a frame: the
//! protocol, sealing and documents are the machine's.
//!
//! The app reaches the machine through [`Client::with_machine`] (every
//! getter and command of [`ClientMachine`]); everything returns at once,
//! and results and incoming traffic arrive as [`Event`]s on the receiver
//! [`Client::start`] returns.

mod socket;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

pub use sealcast_core::client::{AuthRefusal, Event, KeyGrant, KeyRefusal, KeyRequest};
use sealcast_core::client::{ChannelAuth, ClientMachine, MachineConfig, Transmit};
pub use socket::Endpoint;
use socket::{Incoming, Writer};

/// Signs channel access: the app calls its own auth endpoint.
pub trait Authorizer: Send + Sync {
    /// The authorization for `channel` on the connection `socket_id`.
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, AuthRefusal>;
}

/// Hands out keys; results are cached in the client's key ring, so the
/// provider is asked once per (kid, kv).
pub trait KeyProvider: Send + Sync {
    /// The key for `request`: [`KeyRefusal::Refused`] when there is no such
    /// key or the user may not read it, [`KeyRefusal::Unavailable`] when
    /// the provider cannot tell now (what waits for the key then waits
    /// until `key_timeout`; nothing is skipped for a passing outage).
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal>;
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://HOST:PORT` or `wss://HOST[:PORT]`.
    pub url: String,
    /// The app key.
    pub app_key: String,
    /// Pings, timeouts, backoff, bounds on what waits for keys.
    pub machine: MachineConfig,
    /// Whom `wss://` trusts (the platform's trust store by default).
    pub trust: TrustRoots,
    /// Extra trusted root certificates (DER) for `wss://`, whatever `trust`
    /// says (a private CA).
    pub extra_roots: Vec<Vec<u8>>,
    /// Longest time to open a socket.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for `url` and `app_key`.
    pub fn new(url: &str, app_key: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_owned(),
            app_key: app_key.to_owned(),
            machine: MachineConfig::default(),
            trust: TrustRoots::default(),
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The certificate authorities a `wss://` server is verified against
/// (plus [`ClientConfig::extra_roots`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrustRoots {
    /// The platform's verifier (`rustls-platform-verifier`): the system's
    /// trust store, so CAs an enterprise or the user installed are trusted,
    /// with the platform's revocation checks on Apple, Android and Windows;
    /// on Linux the system bundle (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
    #[default]
    Platform,
    /// The Mozilla roots bundled in the SDK (`webpki-roots`): the same
    /// trust on every machine, whatever its store holds.
    Bundled,
}

/// Why a client could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The URL is not `ws://HOST[:PORT]` or `wss://HOST[:PORT]` (caused
    /// by: caller).
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// One of [`ClientConfig::extra_roots`] is not a usable certificate
    /// (caused by: caller).
    #[error("extra root certificate {index}: {source}")]
    BadRootCertificate {
        /// Its index in `extra_roots`.
        index: usize,
        /// Why.
        source: rustls::Error,
    },
    /// The TLS library refused its own configuration (caused by:
    /// environment).
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The platform's trust store could not be used, e.g. a system with
    /// no CA certificates and no extra roots (caused by: environment; use
    /// [`TrustRoots::Bundled`] or install the system's CA bundle).
    #[error("platform trust store: {0}")]
    PlatformTrust(rustls::Error),
}

struct Shared {
    machine: Mutex<ClientMachine>,
    wake: Notify,
    stopped: AtomicBool,
    authorizer: Arc<dyn Authorizer>,
    keys: Arc<dyn KeyProvider>,
    /// Taken by [`Client::close`], which ends the app's event stream.
    events: Mutex<Option<mpsc::UnboundedSender<Event>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ClientMachine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection to a Pusher-protocol server. Dropping it disconnects;
/// [`Client::close`] also waits until the driver has stopped.
pub struct Client {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Client {
    /// Starts a client on `runtime` (it connects at once). Events arrive on
    /// the returned receiver.
    pub fn start(
        config: ClientConfig,
        authorizer: Arc<dyn Authorizer>,
        keys: Arc<dyn KeyProvider>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Client, mpsc::UnboundedReceiver<Event>), NetError> {
        let endpoint = Endpoint::parse(&config.url)?;
        let transport = socket::Transport::for_endpoint(&endpoint, config.trust, &config.extra_roots)?;
        let (events, receiver) = mpsc::unbounded_channel();
        let mut machine = ClientMachine::new(config.machine, Instant::now());
        machine.connect();
        let shared = Arc::new(Shared {
            machine: Mutex::new(machine),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            authorizer,
            keys,
            events: Mutex::new(Some(events)),
        });
        let driver = Driver {
            shared: shared.clone(),
            endpoint,
            app_key: config.app_key,
            transport,
            connect_timeout: config.connect_timeout,
            writer: None,
            reader: None,
        };
        let driver = runtime.spawn(driver.run());
        Ok((Client { shared, runtime: runtime.clone(), driver: Mutex::new(Some(driver)) }, receiver))
    }

    /// Runs `f` on the client's machine — any getter or command of
    /// [`ClientMachine`], documents included (`m.document(id)?.edit(…)`) —
    /// then wakes the driver to carry out what it produced. One lock; `f`
    /// must not block. The machine is told the time first, so what `f`
    /// does is timed from now (a document paces its submissions from it).
    pub fn with_machine<T>(&self, f: impl FnOnce(&mut ClientMachine) -> T) -> T {
        let mut machine = self.shared.lock();
        machine.handle_timeout(Instant::now());
        let result = f(&mut machine);
        drop(machine);
        self.shared.wake.notify_one();
        result
    }

    /// Stops for good: closes the connection, waits (up to 5 s) until the
    /// driver task has ended, and ends the event stream (the receiver
    /// yields what was queued, then `None`). Afterwards no task or thread of
    /// this client runs or calls the app's authorizer or key provider
    /// (except one already inside such a call). Call it from outside the
    /// runtime; inside it, it only signals the stop. Idempotent.
    pub fn close(&self) {
        self.stop();
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(driver) = driver
            && tokio::runtime::Handle::try_current().is_err()
        {
            let _ =
                self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), driver).await });
        }
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.lock().disconnect();
        self.shared.wake.notify_one();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What woke the driver.
enum Input {
    /// The app ran a command.
    Wake,
    /// The socket reader.
    Socket(Option<Incoming>),
    /// An app callback answered.
    Answer(Box<Answer>),
    /// The machine's timeout came.
    Timeout,
}

/// An app callback's answer to one of the machine's requests (a key is
/// large; answers are rare, so they travel boxed).
#[allow(clippy::large_enum_variant)]
enum Answer {
    Authorization { socket_id: String, channel: String, result: Result<ChannelAuth, AuthRefusal> },
    Key { request: KeyRequest, result: Result<KeyGrant, KeyRefusal> },
}

/// The task that owns the socket.
struct Driver {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    app_key: String,
    transport: socket::Transport,
    connect_timeout: Duration,
    writer: Option<Writer>,
    reader: Option<mpsc::UnboundedReceiver<Incoming>>,
}

impl Driver {
    async fn run(mut self) {
        let (answers_tx, mut answers_rx) = mpsc::unbounded_channel::<Box<Answer>>();
        let shared = self.shared.clone();
        let mut input = Input::Wake;
        loop {
            // One lock per input: apply it, take every output.
            let (transmits, events, deadline) = {
                let mut machine = shared.lock();
                self.apply(&mut machine, input);
                let transmits: Vec<Transmit> = std::iter::from_fn(|| machine.poll_transmit()).collect();
                let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
                (transmits, events, machine.poll_timeout())
            };
            self.deliver(events, &answers_tx);
            // Carrying out a transmit can feed the machine (a socket opened
            // or failed): then go round again before waiting.
            let mut fed = false;
            for transmit in transmits {
                fed |= self.perform(transmit).await;
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                if let Some(mut writer) = self.writer.take() {
                    writer.close().await;
                }
                return;
            }
            if fed {
                input = Input::Wake;
                continue;
            }
            input = self.wait(deadline, &mut answers_rx).await;
            if let Input::Socket(Some(Incoming::Ping(payload))) = input {
                if let Some(writer) = &mut self.writer
                    && writer.pong(payload).await.is_err()
                {
                    self.lost(None, "write failed");
                }
                input = Input::Wake;
            }
        }
    }

    async fn wait(
        &mut self,
        deadline: Option<Instant>,
        answers: &mut mpsc::UnboundedReceiver<Box<Answer>>,
    ) -> Input {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let incoming = async {
            match &mut self.reader {
                Some(reader) => reader.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.shared.wake.notified() => Input::Wake,
            message = incoming => Input::Socket(message),
            Some(answer) = answers.recv() => Input::Answer(answer),
            () = sleep => Input::Timeout,
        }
    }

    fn apply(&mut self, machine: &mut ClientMachine, input: Input) {
        let now = Instant::now();
        match input {
            Input::Wake => {}
            Input::Timeout => machine.handle_timeout(now),
            Input::Socket(Some(Incoming::Text(text))) => machine.handle_frame(now, &text),
            Input::Socket(Some(Incoming::Ping(_))) => {}
            Input::Socket(Some(Incoming::Closed(code, reason))) => {
                self.drop_socket();
                machine.handle_closed(now, code, &reason);
            }
            Input::Socket(None) => {
                self.drop_socket();
                machine.handle_closed(now, None, "reader stopped");
            }
            Input::Answer(answer) => match *answer {
                Answer::Authorization { socket_id, channel, result } => {
                    machine.handle_authorization(&socket_id, &channel, result)
                }
                Answer::Key { request, result } => machine.handle_key(now, &request, result),
            },
        }
    }

    /// Hands events to the app; requests go to its callbacks on the
    /// blocking pool, whose answers come back as input.
    fn deliver(&self, events: Vec<Event>, answers: &mpsc::UnboundedSender<Box<Answer>>) {
        if events.is_empty() {
            return;
        }
        let sender = self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for event in events {
            match event {
                Event::NeedAuthorization { socket_id, channel } => {
                    let (authorizer, answers) = (self.shared.authorizer.clone(), answers.clone());
                    tokio::task::spawn_blocking(move || {
                        let result = authorizer.authorize(&socket_id, &channel);
                        let _ = answers.send(Box::new(Answer::Authorization { socket_id, channel, result }));
                    });
                }
                Event::NeedKey(request) => {
                    let (keys, answers) = (self.shared.keys.clone(), answers.clone());
                    tokio::task::spawn_blocking(move || {
                        let result = keys.key(&request);
                        let _ = answers.send(Box::new(Answer::Key { request, result }));
                    });
                }
                event => {
                    if let Some(sender) = &sender {
                        let _ = sender.send(event); // the app dropped its receiver: fine
                    }
                }
            }
        }
    }

    /// Carries out a transmit; true when it fed the machine.
    async fn perform(&mut self, transmit: Transmit) -> bool {
        match transmit {
            Transmit::Connect => {
                self.drop_socket();
                let (tx, rx) = mpsc::unbounded_channel();
                match socket::open(&self.endpoint, &self.app_key, &self.transport, tx, self.connect_timeout)
                    .await
                {
                    Ok(writer) => {
                        self.writer = Some(writer);
                        self.reader = Some(rx);
                        self.shared.lock().handle_open(Instant::now());
                    }
                    Err(error) => {
                        tracing::debug!(%error, "connect failed");
                        self.lost(None, &error.to_string());
                    }
                }
                true
            }
            Transmit::Frame(text) => {
                if let Some(writer) = &mut self.writer
                    && writer.text(&text).await.is_err()
                {
                    self.lost(None, "write failed");
                    return true;
                }
                false
            }
            Transmit::Close => {
                if let Some(mut writer) = self.writer.take() {
                    writer.close().await;
                }
                self.reader = None;
                false
            }
            // An external transport's transmits; this driver owns its link.
            Transmit::Subscribe(_) | Transmit::Unsubscribe(_) | Transmit::Trigger { .. } => false,
        }
    }

    fn drop_socket(&mut self) {
        self.writer = None;
        self.reader = None;
    }

    fn lost(&mut self, code: Option<u16>, reason: &str) {
        self.drop_socket();
        self.shared.lock().handle_closed(Instant::now(), code, reason);
    }
}
