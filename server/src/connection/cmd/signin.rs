//! `pusher:signin`: user authentication (Pusher's user-data signature).

use std::time::Instant;

use sealcast_core::protocol::{ClientFrame, MAX_USER_ID_BYTES, SigninData, auth, server as frames};

use super::super::{Flow, ServerError, Session};

impl Session {
    pub(in crate::connection) fn signin(&mut self, frame: &ClientFrame, now: Instant) -> Flow {
        let Some(data) = self.data_or_refuse::<SigninData>(frame) else { return Flow::Continue };
        let config = self.app.config();
        let verified = auth::verify_user_auth(
            &config.key,
            &config.secret,
            &self.handle.socket_id,
            &data.user_data,
            &data.auth,
        );
        if verified.is_err() {
            self.error(&ServerError::SigninRefused("user sign-in signature does not match"));
            return self.strike(now);
        }
        #[derive(serde::Deserialize)]
        struct User {
            id: String,
        }
        match serde_json::from_str::<User>(&data.user_data) {
            Ok(user) if !user.id.is_empty() && user.id.len() <= MAX_USER_ID_BYTES => {
                self.app.sign_in(&self.handle.socket_id, user.id);
                self.send(frames::signin_success(&data.user_data));
            }
            _ => self.error(&ServerError::SigninRefused(
                "user_data must be a JSON object with a string `id` of 1 to 128 bytes",
            )),
        }
        Flow::Continue
    }
}
