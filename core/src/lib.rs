//! # sealcast-core
//!
//! The sans-IO heart of sealcast, an end-to-end-encrypted realtime pub/sub
//! SDK: nothing in this crate opens a socket, spawns a task, sleeps or reads a
//! clock. Callers pass bytes and values in and take bytes and values out.
//!
//! Today the crate holds [`crypto`]: AES-256-GCM envelopes that replace
//! sensitive JSON fields in place, bound by their AAD to a scope (chat room
//! and message, call and signaling event, custom scope, document op) and to
//! the field's JSON path; keys, key rings with rotation, HKDF derivation and
//! replay defence. The byte-exact format is specified in `docs/envelope.md`.
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

pub mod client;
pub mod crypto;
pub mod doc;
pub mod ot;
pub mod protocol;
pub mod time;

#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
