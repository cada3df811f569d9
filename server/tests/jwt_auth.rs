//! Asymmetric (JWT) channel authorization against a real server: the app
//! registers only public keys.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{APP_ID, Server, now};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn app_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn server() -> Server {
    let x = b64(app_key().verifying_key().as_bytes());
    Server::start("", &format!("[[apps.jwt_keys]]\nkid = \"main\"\nalg = \"EdDSA\"\nx = \"{x}\"\n"))
}

fn token(key: &SigningKey, claims: Value) -> String {
    let header = b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"main"}"#);
    let signed = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    format!("{signed}.{}", b64(&key.sign(signed.as_bytes()).to_bytes()))
}

fn claims(channels: &[&str]) -> Value {
    json!({"aud": APP_ID, "sub": "user-1", "exp": now() + 300, "channels": channels, "user_info": {"name": "One"}})
}

#[tokio::test]
async fn valid_token_subscribes_private_and_presence() {
    let server = server();
    let mut client = server.client().await;
    client.subscribe("private-jwt", Some(&token(&app_key(), claims(&["private-jwt"]))), None).await;
    client.expect_event("pusher_internal:subscription_succeeded").await;

    // Presence member comes from the token, not from client-sent channel_data.
    let forged_member = r#"{"user_id":"admin"}"#;
    client
        .subscribe("presence-jwt", Some(&token(&app_key(), claims(&["presence-jwt"]))), Some(forged_member))
        .await;
    let ok = client.expect_event("pusher_internal:subscription_succeeded").await;
    let data: Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["ids"], json!(["user-1"]));
    assert_eq!(data["presence"]["hash"]["user-1"]["name"], "One");
}

#[tokio::test]
async fn expired_wrong_key_and_wrong_channel_are_refused() {
    let server = server();
    let mut client = server.client().await;
    let mut expired = claims(&["private-jwt"]);
    expired["exp"] = json!(now() - 3600);
    let wrong_key = SigningKey::from_bytes(&[7; 32]);
    let mut other_app = claims(&["private-jwt"]);
    other_app["aud"] = json!("another-app");
    let cases = [
        (token(&app_key(), expired), "expired"),
        (token(&wrong_key, claims(&["private-jwt"])), "signature"),
        (token(&app_key(), claims(&["private-other"])), "does not grant"),
        (token(&app_key(), other_app), "another app"),
    ];
    for (token, reason) in cases {
        client.subscribe("private-jwt", Some(&token), None).await;
        let error = client.expect_event("pusher:subscription_error").await;
        assert_eq!(error["data"]["status"], 401, "{reason}");
        assert!(error["data"]["error"].as_str().unwrap().contains(reason), "{error}");
    }
    // The HMAC path still works for this app.
    client.join("private-hmac", None).await;
}
