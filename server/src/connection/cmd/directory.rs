//! `sealcast:kp-*`: a signed-in connection publishes its user's devices'
//! key packages and fetches other devices' (docs/protocol.md, "Key
//! directory"), within its request rate and the app's budgets.

use sealcast_core::protocol::ClientFrame;
use sealcast_core::protocol::directory::{self, DirectoryError, DirectoryErrorCode, Request};

use super::super::Session;

impl Session {
    pub(in crate::connection) fn key_directory(&mut self, frame: &ClientFrame) {
        let request = match Request::parse(frame) {
            Ok(request) => request,
            Err(err) => return self.directory_refused(frame, DirectoryErrorCode::Invalid, &err.to_string()),
        };
        let Some(user) = self.app.signed_in_user(&self.handle.socket_id) else {
            let message = "sign in (pusher:signin) before using the key directory";
            return self.directory_refused(frame, DirectoryErrorCode::NotSignedIn, message);
        };
        let limits = self.app.config().key_directory;
        match self.state.key_directory.handle(&self.app.id, &user, &request, &limits) {
            Ok(answer) => self.send(answer),
            Err(error) => self.send(directory::encode_error(&error)),
        }
    }

    /// A key directory request over the connection's rate.
    pub(in crate::connection) fn key_directory_rate_limited(&mut self, frame: &ClientFrame) {
        match Request::parse(frame) {
            Ok(request) => self.send(directory::encode_error(&crate::directory::rate_limited(&request))),
            Err(_) => self.directory_refused(frame, DirectoryErrorCode::RateLimited, "rate limit exceeded"),
        }
    }

    fn directory_refused(&self, frame: &ClientFrame, code: DirectoryErrorCode, message: &str) {
        let error = DirectoryError {
            request_id: None,
            request: frame.event.clone(),
            code,
            message: message.to_owned(),
        };
        self.send(directory::encode_error(&error));
    }
}
