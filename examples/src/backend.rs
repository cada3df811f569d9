//! The client side of the app's backend: an [`Authorizer`] and a
//! [`KeyProvider`] that call the auth server ([`crate::auth_server`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sealcast_core::client::ChannelAuth;
use sealcast_core::crypto::Key;
use sealcast_net::{Authorizer, KeyGrant, KeyProvider, KeyRequest};
use serde_json::Value;

use crate::http::{call, encode};

/// A signed-in user of the app, talking to its backend at `base_url`.
pub struct Backend {
    /// `http://HOST:PORT` of the auth server.
    pub base_url: String,
    /// Who this client is (a real app sends its session token instead).
    pub user_id: String,
}

fn json_of(result: Result<(u16, String), String>) -> Result<Value, String> {
    let (status, body) = result?;
    let value: Value =
        serde_json::from_str(&body).map_err(|_| format!("backend answered {status}: {body}"))?;
    if status != 200 {
        return Err(value["error"].as_str().unwrap_or("backend error").to_owned());
    }
    Ok(value)
}

impl Authorizer for Backend {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, String> {
        let form = format!(
            "socket_id={}&channel_name={}&user_id={}",
            encode(socket_id),
            encode(channel),
            encode(&self.user_id)
        );
        let answer = json_of(call(&self.base_url, "POST", "/auth", &form))?;
        Ok(ChannelAuth {
            auth: answer["auth"].as_str().ok_or("no auth in the answer")?.to_owned(),
            channel_data: answer["channel_data"].as_str().map(str::to_owned),
        })
    }
}

impl KeyProvider for Backend {
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, String> {
        let path = match &request.doc_id {
            Some(doc_id) => match &request.key_hint {
                Some(hint) => format!("/doc-key?doc_id={}&key_hint={}", encode(doc_id), encode(hint)),
                None => format!("/doc-key?doc_id={}", encode(doc_id)),
            },
            None => match request.kv {
                Some(kv) => format!("/keys?kid={}&kv={kv}", encode(&request.kid)),
                None => format!("/keys?kid={}", encode(&request.kid)),
            },
        };
        let answer = json_of(call(&self.base_url, "GET", &path, ""))?;
        let bytes =
            B64.decode(answer["key"].as_str().ok_or("no key in the answer")?).map_err(|e| e.to_string())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "a key is 32 bytes")?;
        let kv = answer["kv"].as_u64().and_then(|kv| u32::try_from(kv).ok()).ok_or("no kv in the answer")?;
        // The hint of a new document session key (ignored otherwise).
        let key_hint = answer["key_hint"].as_str().map(str::to_owned);
        Ok(KeyGrant { kv, key: Key::from_bytes(&bytes), key_hint })
    }
}
