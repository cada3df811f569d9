//! End-to-end-encrypted terminal chat. Every line you type is sent as a
//! `client-chat` event whose body is sealed for `chat:ROOM:MESSAGE_ID`;
//! the server relays ciphertext; the others print the plaintext.
//!
//! ```sh
//! sealcast serve                                    # prints the demo app's key and secret
//! cargo run -p sealcast-examples --example auth_server -- --app-id demo --app-key KEY --app-secret SECRET
//! cargo run -p sealcast-examples --example chat -- --key KEY --user ann --room lobby
//! cargo run -p sealcast-examples --example chat -- --key KEY --user bob --room lobby
//! ```
//!
//! Options: `--url ws://127.0.0.1:6001`, `--auth http://127.0.0.1:6002`.

use std::io::BufRead;
use std::sync::Arc;

use sealcast_core::client::CatchUpOutcome;
use sealcast_examples::backend::Backend;
use sealcast_net::{Client, ClientConfig, Event};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = sealcast_examples::args();
    let user = args.get("user").cloned().ok_or("--user is required")?;
    let room = args.get("room").cloned().unwrap_or_else(|| "lobby".into());
    let key = args.get("key").cloned().ok_or("--key (the app key) is required")?;
    let url = args.get("url").cloned().unwrap_or_else(|| "ws://127.0.0.1:6001".into());
    let auth = args.get("auth").cloned().unwrap_or_else(|| "http://127.0.0.1:6002".into());

    let runtime = tokio::runtime::Runtime::new()?;
    let backend = Arc::new(Backend { base_url: auth, user_id: user.clone() });
    let (client, mut events) =
        Client::start(ClientConfig::new(&url, &key), backend.clone(), backend, runtime.handle())?;
    let channel = format!("presence-chat-{room}");
    client.with_machine(|m| m.subscribe(&channel))?;

    // Print what arrives, on the runtime.
    let me = user.clone();
    let printer = runtime.spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Subscribed { channel } => println!("* joined {channel} as {me}"),
                Event::MemberAdded { member, .. } => println!("* {} joined", member.user_id),
                Event::MemberRemoved { member, .. } => println!("* {} left", member.user_id),
                Event::Message { event, data, user_id, .. } if event == "client-chat" => {
                    println!("{}: {}", user_id.unwrap_or_default(), data["body"].as_str().unwrap_or_default())
                }
                Event::Undecryptable { user_id, error, .. } => {
                    println!("! a message from {} did not open: {error}", user_id.unwrap_or_default())
                }
                Event::SubscriptionFailed { message, .. } => println!("! subscription refused: {message}"),
                // The server keeps the chat's history (the demo app does):
                // after a reconnect the missed messages were printed above.
                Event::CatchUp { outcome: CatchUpOutcome::Complete { events }, .. } if events > 0 => {
                    println!("* caught up: {events} message(s) sent while you were away")
                }
                Event::CatchUp { outcome: CatchUpOutcome::Complete { .. }, .. } => {}
                Event::CatchUp { .. } => println!("! some messages sent while you were away were lost"),
                Event::Error { message, .. } => println!("! {message}"),
                _ => {}
            }
        }
    });

    // Send each line typed; stop at end of input.
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let message_id = format!("{user}-{n}");
        let data = json!({"body": line, "id": message_id});
        if let Err(err) = client.with_machine(|m| m.send_chat(&channel, &room, &message_id, data)) {
            println!("! not sent: {err}");
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(client);
    runtime.block_on(printer)?;
    Ok(())
}
