//! A scriptable document editor over the network: the Rust client's side
//! of the browser package's interop test (bindings/js/test). It opens
//! document `--doc` on `presence-doc-ID` with key id `doc-ID` and the
//! document session's key from the auth server's `/doc-key` (as the web
//! demo does, docs/web.md) and reads commands on stdin:
//!
//! - `insert INDEX TEXT`: inserts TEXT at UTF-16 index INDEX of its view;
//! - `view`: prints `VIEW {"view": delta, "version": n}`;
//! - end of input: closes.
//!
//! It prints `READY` when the document is joined and `DIVERGED …` if it
//! stops.
//!
//! ```sh
//! cargo run -p sealcast-examples --example doc_peer -- --key KEY --user rusty --doc welcome
//! ```
//!
//! Options: `--url ws://127.0.0.1:6001`, `--auth http://127.0.0.1:6002`.

use std::io::BufRead;
use std::sync::Arc;

use sealcast_core::client::DocOptions;
use sealcast_core::doc::{DocClientEvent, DocConfig};
use sealcast_core::ot::Delta;
use sealcast_examples::backend::Backend;
use sealcast_net::{Client, ClientConfig, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = sealcast_examples::args();
    let user = args.get("user").cloned().ok_or("--user is required")?;
    let doc_id = args.get("doc").cloned().ok_or("--doc is required")?;
    let key = args.get("key").cloned().ok_or("--key (the app key) is required")?;
    let url = args.get("url").cloned().unwrap_or_else(|| "ws://127.0.0.1:6001".into());
    let auth = args.get("auth").cloned().unwrap_or_else(|| "http://127.0.0.1:6002".into());

    let runtime = tokio::runtime::Runtime::new()?;
    let backend = Arc::new(Backend { base_url: auth, user_id: user });
    // The document session's key from `/doc-key`: the server records the
    // first session's hint, so every editor, in any language, gets one key.
    let (client, mut events) =
        Client::start(ClientConfig::new(&url, &key), backend.clone(), backend, runtime.handle())?;
    let options = DocOptions {
        presence: true,
        kid: format!("doc-{doc_id}"),
        key_hint: None,
        config: DocConfig::default(),
    };
    client.with_machine(|m| m.open_document(&doc_id, options))?;

    let printer = runtime.spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Document { event: DocClientEvent::Ready { .. }, .. } => println!("READY"),
                Event::Document { event: DocClientEvent::Diverged { reason, .. }, .. } => {
                    println!("DIVERGED {reason}")
                }
                Event::Error { message, .. } => eprintln!("doc_peer: {message}"),
                _ => {}
            }
        }
    });

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (command, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let result = client.with_machine(|m| -> Result<(), Box<dyn std::error::Error>> {
            let mut doc = m.document(&doc_id)?;
            match command {
                "insert" => {
                    let (index, text) = rest.split_once(' ').ok_or("insert INDEX TEXT")?;
                    let mut change = Delta::new();
                    change.retain(index.parse()?, None).insert_text(text, None);
                    doc.edit(change.chop())?;
                }
                "view" => {
                    let (view, version) = doc.versioned_view()?;
                    println!("VIEW {}", serde_json::json!({"view": view.to_json(), "version": version}));
                }
                other => return Err(format!("unknown command {other}").into()),
            }
            Ok(())
        });
        if let Err(err) = result {
            println!("ERROR {err}");
        }
    }
    client.close();
    runtime.block_on(printer)?;
    Ok(())
}
