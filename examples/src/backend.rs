//! The client side of the app's backend: an [`Authorizer`] and a
//! [`KeyProvider`] that call the auth server ([`crate::auth_server`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sealcast_core::client::ChannelAuth;
use sealcast_core::crypto::Key;
use sealcast_net::{AuthRefusal, Authorizer, KeyGrant, KeyProvider, KeyRefusal, KeyRequest};
use serde_json::Value;

use crate::http::{CallError, call, encode};

/// A signed-in user of the app, talking to its backend at `base_url`.
pub struct Backend {
    /// `http://HOST:PORT` of the auth server.
    pub base_url: String,
    /// Who this client is (a real app sends its session token instead).
    pub user_id: String,
}

/// What the app backend answered: its JSON on 200; a 4xx is a refusal
/// (no such key, not allowed), anything else (no answer, a 5xx, not JSON)
/// a failure of the moment.
enum Answer {
    Json(Value),
    Refused(String),
    Failed(String),
}

fn json_of(result: Result<(u16, String), CallError>) -> Answer {
    let (status, body) = match result {
        Ok(answer) => answer,
        Err(err) => return Answer::Failed(err.to_string()),
    };
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return Answer::Failed(format!("backend answered {status}: {body}"));
    };
    let error = || value["error"].as_str().unwrap_or("backend error").to_owned();
    match status {
        200 => Answer::Json(value),
        400..=499 => Answer::Refused(error()),
        _ => Answer::Failed(error()),
    }
}

impl Authorizer for Backend {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, AuthRefusal> {
        let form = format!(
            "socket_id={}&channel_name={}&user_id={}",
            encode(socket_id),
            encode(channel),
            encode(&self.user_id)
        );
        let answer = match json_of(call(&self.base_url, "POST", "/auth", &form)) {
            Answer::Json(answer) => answer,
            Answer::Refused(why) | Answer::Failed(why) => return Err(AuthRefusal::new(why)),
        };
        Ok(ChannelAuth {
            auth: answer["auth"]
                .as_str()
                .ok_or_else(|| AuthRefusal::new("no auth in the answer"))?
                .to_owned(),
            channel_data: answer["channel_data"].as_str().map(str::to_owned),
        })
    }
}

impl KeyProvider for Backend {
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
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
        let answer = match json_of(call(&self.base_url, "GET", &path, "")) {
            Answer::Json(answer) => answer,
            Answer::Refused(why) => return Err(KeyRefusal::Refused(why)),
            Answer::Failed(why) => return Err(KeyRefusal::Unavailable(why)),
        };
        // A grant that is not a key is the provider's fault, not a passing one.
        let bad = |why: &str| KeyRefusal::Refused(why.to_owned());
        let text = answer["key"].as_str().ok_or_else(|| bad("no key in the answer"))?;
        let bytes = B64.decode(text).map_err(|_| bad("the key is not base64"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("a key is 32 bytes"))?;
        let kv = answer["kv"]
            .as_u64()
            .and_then(|kv| u32::try_from(kv).ok())
            .ok_or_else(|| bad("no kv in the answer"))?;
        // The hint of a new document session key (ignored otherwise).
        let key_hint = answer["key_hint"].as_str().map(str::to_owned);
        Ok(KeyGrant { kv, key: Key::from_bytes(&bytes), key_hint })
    }
}
