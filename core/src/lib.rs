//! # sealcast-core
//!
//! The sans-IO heart of sealcast, an end-to-end-encrypted realtime pub/sub
//! SDK: nothing in this crate opens a socket, spawns a task, sleeps or reads a
//! clock. Callers pass bytes and values in and take bytes and values out.
//!
//! What it holds, each module owning one thing:
//! - [`crypto`]: AES-256-GCM envelopes that replace sensitive JSON fields in
//!   place, bound by their AAD to a scope (chat room and message, call and
//!   signaling event, custom scope, document op) and to the field's JSON
//!   path; keys, key rings with rotation, HKDF derivation and replay
//!   defence (`docs/envelope.md` specifies the bytes).
//! - [`protocol`]: the one home of the wire (Pusher v7 frames, channel
//!   kinds, the document protocol and its error codes, the handshake path),
//!   used by the client, the server, the load generator and the fuzzers.
//! - [`ot`]: Quill Deltas and their transform; [`doc`]: one encrypted
//!   document over the blind sequencer ([`doc::DocSync`]).
//! - [`keys`]: the client's one owner of keys — rings, questions to the
//!   app, refusals — and its one policy for asking.
//! - [`client`]: [`client::ClientMachine`], the whole client as one sans-IO
//!   state machine (link, keys, sealed events, held messages, documents).
//!
//! Drivers live beside it: `sealcast-net` (tokio, for Rust apps and the
//! uniffi bindings), `bindings/wasm` (browsers, over pusher-js). The
//! sequencer's storage policy is `sealcast-sequencer`, which no client
//! compiles. Sealing a field:
//!
//! ```
//! use sealcast_core::crypto::{Key, KeyRing, Scope, seal_fields, open_fields};
//! use serde_json::json;
//!
//! let mut ring = KeyRing::new();
//! ring.insert("room-42", 1, Key::generate()?)?;
//! let scope = Scope::chat("room-42", "msg-1")?;
//!
//! let mut event = json!({"body": "Private message", "sender_id": "user-1"});
//! seal_fields(&mut event, &["/body"], &mut ring, "room-42", &scope)?;
//! assert!(event["body"].is_object()); // now an envelope; sender_id stays plain
//!
//! let opened = open_fields(&mut event, &ring, &scope, &["/body"])?;
//! assert_eq!(opened, vec!["/body".to_string()]);
//! assert_eq!(event["body"], "Private message");
//! # Ok::<(), sealcast_core::crypto::CryptoError>(())
//! ```
//!
//! Driving the client machine (what `sealcast-net`, the bindings and the
//! test harness do): feed it what happened, then drain its outputs.
//!
//! ```
//! use sealcast_core::client::{ClientMachine, Event, MachineConfig, Transmit};
//! use sealcast_core::time::Instant;
//!
//! let mut machine = ClientMachine::new(MachineConfig::default(), Instant::now());
//! machine.connect();
//! machine.subscribe("private-room")?;
//! // The driver's loop: carry out each transmit…
//! let mut frames = Vec::new();
//! while let Some(transmit) = machine.poll_transmit() {
//!     match transmit {
//!         Transmit::Connect => machine.handle_open(Instant::now()), // the socket opened
//!         Transmit::Frame(text) => frames.push(text),               // write it to the socket
//!         _ => {}
//!     }
//! }
//! // …feed what the server sends…
//! let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
//! machine.handle_frame(Instant::now(), established);
//! // …and deliver events, answering the machine's requests.
//! let mut asked = None;
//! while let Some(event) = machine.poll_event() {
//!     if let Event::NeedAuthorization { socket_id, channel } = event {
//!         asked = Some((socket_id, channel)); // the app signs it, then handle_authorization
//!     }
//! }
//! assert_eq!(asked, Some(("1.2".to_owned(), "private-room".to_owned())));
//! # Ok::<(), sealcast_core::client::CommandError>(())
//! ```

pub mod client;
pub mod crypto;
pub mod doc;
pub mod keys;
pub mod ot;
pub mod protocol;
pub mod time;

#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
