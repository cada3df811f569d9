//! Seal the body of a chat message and open it again: the smallest use of
//! sealcast's envelopes. Run: `cargo run -p sealcast-examples --example seal_chat`.

use sealcast_core::crypto::{CryptoError, Key, KeyRing, Scope, open_fields, seal_fields};
use serde_json::json;

fn main() -> Result<(), CryptoError> {
    let mut ring = KeyRing::new();
    ring.insert("room-42", 1, Key::generate()?)?;
    let scope = Scope::chat("room-42", "msg-1")?;
    let mut event = json!({"body": "Private message", "sender_id": "user-1"});

    seal_fields(&mut event, &["/body"], &mut ring, "room-42", &scope)?;
    println!("sealed: {event}");
    assert!(!event.to_string().contains("Private message"));

    open_fields(&mut event, &ring, &scope, &["/body"])?;
    println!("opened: {event}");
    assert_eq!(event["body"], "Private message");
    Ok(())
}
