//! `sealcast:history`: a subscriber reads the history of a channel it is
//! subscribed to (so private and presence authorization applies), within
//! its connection's and its app's read rates (docs/history.md).

use sealcast_core::protocol::ClientFrame;
use sealcast_core::protocol::history::{self, HistoryError, HistoryErrorCode, Read};

use super::super::Session;
use crate::app::HistoryReadError;
use crate::history::HistoryStoreError;

impl Session {
    pub(in crate::connection) fn history(&mut self, frame: &ClientFrame) {
        let channel = frame.channel.clone().unwrap_or_default();
        let read = match Read::parse(frame) {
            Ok(read) => read,
            Err(err) => {
                return self.history_error(&channel, None, HistoryErrorCode::Invalid, &err.to_string());
            }
        };
        let id = read.request_id.clone();
        if self.app.subscription(&self.handle.socket_id, &channel).is_none() {
            let message = "subscribe to the channel before reading its history";
            return self.history_error(&channel, id, HistoryErrorCode::NotSubscribed, message);
        }
        match self.app.read_history(&channel, &read) {
            Ok(page) => self.send(history::encode_page(&channel, &page)),
            Err(err) => {
                if let HistoryReadError::Store(HistoryStoreError::Backend(_)) = err {
                    tracing::error!(error = %err, "history store failed on a read");
                }
                self.history_error(&channel, id, err.code(), &err.to_string());
            }
        }
    }

    /// A history read over the connection's rate.
    pub(in crate::connection) fn history_rate_limited(&mut self, frame: &ClientFrame) {
        let channel = frame.channel.clone().unwrap_or_default();
        let id = Read::parse(frame).ok().and_then(|read| read.request_id);
        self.history_error(&channel, id, HistoryErrorCode::RateLimited, "history read rate limit exceeded");
    }

    fn history_error(
        &self,
        channel: &str,
        request_id: Option<String>,
        code: HistoryErrorCode,
        message: &str,
    ) {
        let error = HistoryError { request_id, code, message: message.to_owned() };
        self.send(history::encode_error(channel, &error));
    }
}
