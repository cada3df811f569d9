//! An app's auth server: the backend a sealcast app runs beside its own
//! API. It decides who may use which channel (signing with the app secret,
//! or with an Ed25519 key whose public half is registered with the
//! realtime server), and hands keys to its users, derived with HKDF from a
//! master key the realtime server never sees (docs/keys.md).
//!
//! | route | parameters | answer |
//! |---|---|---|
//! | `POST /auth` | `socket_id`, `channel_name`, `user_id` | `{auth, channel_data?}` (HMAC) or `{auth: JWT}` |
//! | `GET /keys` | `kid`, `kv?` | `{kv, key}`: version `kv` (default: current) of `kid` |
//! | `POST /rotate` | `kid` | `{kv}`: the new current version |
//! | `GET /doc-key` | `doc_id`, `key_hint?` | `{kv, key, key_hint}`: without `key_hint`, a new document session key; with it, the key of the session it names |
//! | `GET /config.json` | | the site's public settings (with a site) |
//! | `GET /PATH` | | a file of the site's directory (with a site) |
//!
//! Keys are base64url. A real backend authenticates its users first (the
//! `user_id` here is taken on trust) and checks they may see the channel.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};
use sealcast_core::crypto::{DerivedKey, Key, derive_key};
use sealcast_core::protocol::auth::channel_auth;
use serde_json::{Value, json};

use crate::http::{Request, read_request, respond, respond_with};

/// How the server signs channel access.
pub enum Signing {
    /// Pusher HMAC with the app secret.
    Hmac,
    /// An Ed25519 JWT (`kid`, private key).
    Jwt {
        /// The key id registered with the realtime server.
        kid: String,
        /// The private key.
        key: Box<SigningKey>,
    },
}

/// The auth server's settings.
pub struct Config {
    /// App id (the JWT audience).
    pub app_id: String,
    /// App key.
    pub app_key: String,
    /// App secret (HMAC signing).
    pub app_secret: String,
    /// How to sign.
    pub signing: Signing,
    /// The master key all content keys derive from.
    pub master: Key,
    /// Static pages served beside the routes (the web demo), if any.
    pub site: Option<Site>,
}

/// A directory of static files, and the public settings its pages read
/// from `/config.json` (the app key, the realtime server's address).
pub struct Site {
    /// The files.
    pub dir: std::path::PathBuf,
    /// What `/config.json` answers.
    pub config: Value,
}

struct State {
    config: Config,
    /// Current version per key id (1 until rotated).
    versions: Mutex<HashMap<String, u32>>,
}

/// Starts serving on `addr` (e.g. `127.0.0.1:0`) on a background thread;
/// returns the bound address.
pub fn start(config: Config, addr: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let state = Arc::new(State { config, versions: Mutex::default() });
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = state.clone();
            std::thread::spawn(move || {
                let Ok(request) = read_request(&stream) else { return };
                if let Some(site) = &state.config.site
                    && request.method == "GET"
                    && serve_site(site, &request, &stream)
                {
                    return;
                }
                let (status, body) = match handle(&state, &request) {
                    Ok(body) => (200, body.to_string()),
                    Err(message) => (400, json!({"error": message}).to_string()),
                };
                let _ = respond(&stream, status, &body);
            });
        }
    });
    Ok(bound)
}

/// Serves `/config.json` and the site's files; false for the API routes.
fn serve_site(site: &Site, request: &Request, stream: &std::net::TcpStream) -> bool {
    let path = request.path.as_str();
    if matches!(path, "/keys" | "/doc-key") {
        return false;
    }
    if path == "/config.json" {
        let _ = respond(stream, 200, &site.config.to_string());
        return true;
    }
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "index.html" } else { relative };
    // Plain names only: no `..`, no hidden files, nothing outside the directory.
    let safe = relative.split('/').all(|part| {
        !part.is_empty()
            && !part.starts_with('.')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    let file = safe.then(|| std::fs::read(site.dir.join(relative)).ok()).flatten();
    let _ = match file {
        Some(bytes) => respond_with(stream, 200, content_type(relative), &bytes),
        None => respond_with(stream, 404, "text/plain", b"not found"),
    };
    true
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        _ => "application/octet-stream",
    }
}

fn param<'a>(request: &'a Request, name: &str) -> Result<&'a str, String> {
    request.params.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or(format!("missing {name}"))
}

fn handle(state: &State, request: &Request) -> Result<Value, String> {
    let config = &state.config;
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/auth") => {
            let (socket_id, channel, user_id) =
                (param(request, "socket_id")?, param(request, "channel_name")?, param(request, "user_id")?);
            let member = json!({"user_id": user_id, "user_info": {"name": user_id}}).to_string();
            let channel_data = channel.starts_with("presence-").then_some(member);
            Ok(match &config.signing {
                Signing::Hmac => {
                    let auth = channel_auth(
                        &config.app_key,
                        &config.app_secret,
                        socket_id,
                        channel,
                        channel_data.as_deref(),
                    );
                    json!({"auth": auth, "channel_data": channel_data})
                }
                Signing::Jwt { kid, key } => {
                    json!({"auth": jwt(kid, key, &config.app_id, socket_id, channel, user_id)})
                }
            })
        }
        ("GET", "/keys") => {
            let kid = param(request, "kid")?;
            let current = *state.versions.lock().unwrap().get(kid).unwrap_or(&1);
            let kv = match request.params.get("kv") {
                Some(kv) => kv.parse::<u32>().map_err(|_| "kv must be a number")?,
                None => current,
            };
            if kv == 0 || kv > current {
                return Err(format!("no version {kv} of {kid}"));
            }
            let key = derive_key(&config.master, "app-key", &format!("{kid}/{kv}"), b"");
            Ok(json!({"kv": kv, "key": B64.encode(key.expose_secret())}))
        }
        ("POST", "/rotate") => {
            let kid = param(request, "kid")?;
            let mut versions = state.versions.lock().unwrap();
            let kv = versions.entry(kid.to_owned()).or_insert(1);
            *kv += 1;
            Ok(json!({"kv": *kv}))
        }
        ("GET", "/doc-key") => {
            let doc_id = param(request, "doc_id")?;
            // No hint: a new document session (its hint is recorded by the
            // realtime server); a hint, even empty: the session it names.
            let derived = match request.params.get("key_hint") {
                None => DerivedKey::new_session(&config.master, doc_id),
                Some(hint) => DerivedKey::from_hint(&config.master, doc_id, hint),
            }
            .map_err(|e| e.to_string())?;
            Ok(json!({"kv": 1, "key": B64.encode(derived.key.expose_secret()), "key_hint": derived.key_hint}))
        }
        _ => Err(format!("no route {} {}", request.method, request.path)),
    }
}

/// An EdDSA JWT granting `channel` to `user_id` on `socket_id` for 10 minutes.
fn jwt(kid: &str, key: &SigningKey, app_id: &str, socket_id: &str, channel: &str, user_id: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let header = json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"});
    let claims = json!({
        "aud": app_id, "exp": now + 600, "channels": [channel], "sub": user_id,
        "user_info": {"name": user_id}, "socket_id": socket_id,
    });
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

/// The base64url public key to register as `x` in `[[apps.jwt_keys]]`.
pub fn public_key_x(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().to_bytes())
}
