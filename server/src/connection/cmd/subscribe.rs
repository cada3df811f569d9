//! `pusher:subscribe` and `pusher:unsubscribe`: channel authorization
//! (Pusher HMAC or JWT; for a user's own `#server-to-user-` channel, the
//! connection's sign-in), presence members, and the subscription caps.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sealcast_core::protocol::{
    ChannelKind, ChannelName, ClientFrame, PresenceMember, SubscribeData, UnsubscribeData, auth, codes,
    server as frames,
};
use tracing::debug;

use super::super::limits::Verdict;
use super::super::{ABUSE, Flow, Session};
use crate::app::SubscribeError;
use crate::{jwt, warn_throttled};

/// Why a subscription was not authorized.
enum AuthRefusal {
    /// Bad or missing signature or token (4009 / HTTP-style 401).
    Unauthorized(String),
    /// Authorized, but the presence member data is unusable (400).
    BadPresenceData(String),
}

impl Session {
    pub(in crate::connection) fn subscribe(&mut self, frame: &ClientFrame, now: Instant) -> Flow {
        let Some(data) = self.data_or_refuse::<SubscribeData>(frame) else { return Flow::Continue };
        let channel = match ChannelName::parse(&data.channel) {
            Ok(channel) => channel,
            Err(err) => {
                self.subscription_error(&data.channel, "InvalidChannel", &err.to_string(), 400);
                return Flow::Continue;
            }
        };
        // Presence changes are broadcast to every member: they have their
        // own, lower rate (checked before the signature, which costs CPU).
        if channel.kind() == ChannelKind::Presence {
            match self.limits.presence_change(now) {
                Verdict::Allow => {}
                Verdict::Refuse => {
                    self.state.metrics.rate_limited.inc();
                    let message = "presence subscription rate limit exceeded; retry later";
                    self.subscription_error(channel.as_str(), "LimitReached", message, 429);
                    return Flow::Continue;
                }
                Verdict::Close => return ABUSE,
            }
        }
        // A user's own channel: the sign-in is the authorization.
        if let Some(user_id) = channel.user_id()
            && self.app.signed_in_user(&self.handle.socket_id).as_deref() != Some(user_id)
        {
            self.unauthorized(
                &channel,
                "only a connection signed in as this user (pusher:signin) may subscribe",
            );
            return self.strike(now);
        }
        let member = if channel.requires_auth() {
            let Some(auth_value) = data.auth.as_deref() else {
                self.unauthorized(&channel, "missing `auth` for a private or presence channel");
                return self.strike(now);
            };
            let authorized = if jwt::looks_like_jwt(auth_value) && self.app.tokens().is_enabled() {
                self.authorize_token(&channel, auth_value)
            } else {
                self.authorize_signature(&channel, auth_value, data.channel_data.as_deref())
            };
            match authorized {
                Ok(member) => member,
                Err(AuthRefusal::Unauthorized(message)) => {
                    self.unauthorized(&channel, &message);
                    return self.strike(now);
                }
                Err(AuthRefusal::BadPresenceData(message)) => {
                    self.subscription_error(channel.as_str(), "InvalidPresenceData", &message, 400);
                    return Flow::Continue;
                }
            }
        } else {
            None
        };
        let refusal = match self.app.subscribe(&self.handle.socket_id, &channel, member, &self.state.metrics)
        {
            Ok(()) => {
                debug!(channel = %channel, "subscribed");
                return Flow::Continue;
            }
            Err(SubscribeError::NotConnected) => return Flow::Continue,
            Err(refusal) => refusal,
        };
        let message = match refusal {
            SubscribeError::PresenceFull => "presence channel is full",
            SubscribeError::TooManySubscriptions => "subscribed to too many channels on this connection",
            SubscribeError::TooManyChannels => "the app has too many occupied channels",
            SubscribeError::NotConnected => return Flow::Continue,
        };
        self.subscription_error(channel.as_str(), "LimitReached", message, 403);
        Flow::Continue
    }

    /// Pusher HMAC authorization; the presence member comes from `channel_data`.
    fn authorize_signature(
        &self,
        channel: &ChannelName,
        auth_value: &str,
        channel_data: Option<&str>,
    ) -> Result<Option<PresenceMember>, AuthRefusal> {
        let config = self.app.config();
        let presence = channel.kind() == ChannelKind::Presence;
        let channel_data = presence.then(|| channel_data.unwrap_or(""));
        auth::verify_channel_auth(
            &config.key,
            &config.secret,
            &self.handle.socket_id,
            channel.as_str(),
            channel_data,
            auth_value,
        )
        .map_err(|err| AuthRefusal::Unauthorized(err.to_string()))?;
        let Some(channel_data) = channel_data else { return Ok(None) };
        if channel_data.len() > config.max_presence_data_bytes {
            return Err(AuthRefusal::BadPresenceData("channel_data too large".into()));
        }
        PresenceMember::parse(channel_data)
            .map(Some)
            .map_err(|err| AuthRefusal::BadPresenceData(err.to_string()))
    }

    /// JWT authorization; the presence member comes from the token's claims.
    fn authorize_token(
        &self,
        channel: &ChannelName,
        token: &str,
    ) -> Result<Option<PresenceMember>, AuthRefusal> {
        let presence = channel.kind() == ChannelKind::Presence;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let grant = self
            .app
            .tokens()
            .verify(token, &self.app.id, &self.handle.socket_id, channel.as_str(), presence, now)
            .map_err(|err| AuthRefusal::Unauthorized(err.to_string()))?;
        match (presence, grant.user_id) {
            (true, Some(user_id)) => {
                let info_size = grant.user_info.as_ref().map_or(0, |i| i.get().len());
                if info_size > self.app.config().max_presence_data_bytes {
                    return Err(AuthRefusal::BadPresenceData("user_info too large".into()));
                }
                Ok(Some(PresenceMember { user_id, user_info: grant.user_info }))
            }
            _ => Ok(None),
        }
    }

    pub(in crate::connection) fn unsubscribe(&mut self, frame: &ClientFrame, now: Instant) -> Flow {
        let Some(data) = self.data_or_refuse::<UnsubscribeData>(frame) else { return Flow::Continue };
        // Leaving a presence channel is a broadcast too (same bucket as
        // joining; an unsubscribe cannot be refused, so over the rate it
        // only costs a strike).
        if ChannelKind::of(&data.channel).is_presence() && self.limits.presence_change(now) == Verdict::Close
        {
            return ABUSE;
        }
        self.app.unsubscribe(&self.handle.socket_id, &data.channel, &self.state.metrics);
        Flow::Continue
    }

    fn unauthorized(&mut self, channel: &ChannelName, message: &str) {
        warn_throttled!(channel = %channel, "subscription refused: {message}");
        self.state.metrics.error(codes::UNAUTHORIZED);
        self.send(frames::subscription_error(channel.as_str(), "AuthError", message, 401));
    }

    fn subscription_error(&mut self, channel: &str, kind: &str, message: &str, status: u16) {
        self.send(frames::subscription_error(channel, kind, message, status));
    }
}
