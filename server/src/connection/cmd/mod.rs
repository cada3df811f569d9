//! One file per client command, each an `impl Session` block owning the
//! command's checks: `subscribe` (and unsubscribe, authorization),
//! `signin`, `client_event`, `document`, `history`, `directory` (the key
//! directory).

mod client_event;
mod directory;
mod document;
mod history;
mod signin;
mod subscribe;
