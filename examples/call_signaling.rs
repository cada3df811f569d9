//! Call signaling with sealed SDP: Alice calls Bob through a sealcast
//! server; offer, answer and ICE candidates travel as `client-` events on a
//! presence channel with `/sdp` and `/candidate` sealed for
//! `call:CALL_ID:EVENT`. Prints each step and `call established` at the end.
//!
//! ```sh
//! sealcast serve                # prints the demo app's key and secret
//! cargo run -p sealcast-examples --example auth_server -- --app-id demo --app-key KEY --app-secret SECRET
//! cargo run -p sealcast-examples --example call_signaling -- --key KEY
//! ```

use std::sync::Arc;
use std::time::Duration;

use sealcast_examples::backend::Backend;
use sealcast_net::{Client, ClientConfig, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const CALL: &str = "call-42";

/// Waits for `name` on `events` (10 s), returning its data.
async fn wait(events: &mut UnboundedReceiver<Event>, name: &str) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) | Ok(None) => return Err(format!("no {name} within 10 s")),
            Ok(Some(Event::Message { event, data, .. })) if event == name => return Ok(data),
            Ok(Some(Event::Subscribed { channel })) if name == "subscribed" => return Ok(json!(channel)),
            Ok(Some(Event::Undecryptable { error, .. })) => {
                return Err(format!("undecryptable signal: {error}"));
            }
            Ok(Some(_)) => {}
        }
    }
}

/// Sends a signaling event with its SDP and ICE candidate sealed for
/// `call:CALL:EVENT` (the SDK's signaling convention).
fn send(client: &Client, channel: &str, event: &str, data: Value) -> Result<(), Box<dyn std::error::Error>> {
    client.with_machine(|m| m.send_signal(channel, CALL, event, data))?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = sealcast_examples::args();
    let key = args.get("key").cloned().ok_or("--key (the app key) is required")?;
    let url = args.get("url").cloned().unwrap_or_else(|| "ws://127.0.0.1:6001".into());
    let auth = args.get("auth").cloned().unwrap_or_else(|| "http://127.0.0.1:6002".into());
    let channel = format!("presence-{CALL}");
    let runtime = tokio::runtime::Handle::current();
    let connect = |user: &str| {
        let backend = Arc::new(Backend { base_url: auth.clone(), user_id: user.into() });
        Client::start(ClientConfig::new(&url, &key), backend.clone(), backend, &runtime)
    };
    let (alice, mut alice_events) = connect("alice")?;
    let (bob, mut bob_events) = connect("bob")?;
    alice.with_machine(|m| m.subscribe(&channel))?;
    bob.with_machine(|m| m.subscribe(&channel))?;
    wait(&mut alice_events, "subscribed").await?;
    wait(&mut bob_events, "subscribed").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let offer_sdp = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nm=audio 49170 RTP/AVP 0\r\n";
    send(&alice, &channel, "client-offer", json!({"type": "offer", "sdp": offer_sdp}))?;
    println!("alice -> offer (sealed SDP)");
    let offer = wait(&mut bob_events, "client-offer").await?;
    assert_eq!(offer["sdp"], offer_sdp);
    println!("bob   <- offer, {} bytes of SDP", offer_sdp.len());

    let answer_sdp = "v=0\r\no=bob 2 2 IN IP4 198.51.100.7\r\ns=-\r\nm=audio 51372 RTP/AVP 0\r\n";
    send(&bob, &channel, "client-answer", json!({"type": "answer", "sdp": answer_sdp}))?;
    println!("bob   -> answer (sealed SDP)");
    let answer = wait(&mut alice_events, "client-answer").await?;
    assert_eq!(answer["sdp"], answer_sdp);
    println!("alice <- answer");

    for (from, to_events, candidate) in [
        (&alice, &mut bob_events, "candidate:1 1 UDP 2122252543 192.0.2.10 49170 typ host"),
        (&bob, &mut alice_events, "candidate:1 1 UDP 2122252543 198.51.100.7 51372 typ host"),
    ] {
        send(from, &channel, "client-ice", json!({"candidate": candidate, "sdpMLineIndex": 0}))?;
        let got = wait(to_events, "client-ice").await?;
        assert_eq!(got["candidate"], candidate);
        println!("ice   candidate exchanged: {}", &candidate[..24]);
    }
    println!("call established");
    Ok(())
}
