//! The app's auth server (see `sealcast_examples::auth_server`):
//!
//! ```sh
//! cargo run -p sealcast-examples --example auth_server -- \
//!   --app-id demo --app-key KEY --app-secret SECRET [--port 6002] [--master BASE64URL] \
//!   [--site DIR --site-config JSON]
//! ```
//!
//! Without `--master` a random master key is made (keys then change on
//! every start). With `--site`, the files of DIR are served too and
//! `/config.json` answers the JSON of `--site-config` (the web demo,
//! scripts/web-demo.sh). Prints `auth server listening on http://…`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sealcast_core::crypto::Key;
use sealcast_examples::auth_server::{Config, Signing, Site, start};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = sealcast_examples::args();
    let get = |name: &str| args.get(name).cloned().ok_or(format!("--{name} is required"));
    let master = match args.get("master") {
        Some(text) => {
            Key::from_bytes(&B64.decode(text)?.try_into().map_err(|_| "--master must be 32 bytes")?)
        }
        None => Key::generate()?,
    };
    let config = Config {
        app_id: get("app-id")?,
        app_key: get("app-key")?,
        app_secret: get("app-secret")?,
        signing: Signing::Hmac,
        master,
        site: match args.get("site") {
            None => None,
            Some(dir) => Some(Site {
                dir: dir.into(),
                config: serde_json::from_str(args.get("site-config").map_or("{}", String::as_str))
                    .map_err(|e| format!("--site-config: {e}"))?,
            }),
        },
    };
    let port = args.get("port").map_or("6002", String::as_str);
    let addr = start(config, &format!("127.0.0.1:{port}"))?;
    println!("auth server listening on http://{addr}");
    loop {
        std::thread::park();
    }
}
