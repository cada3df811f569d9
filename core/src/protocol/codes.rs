//! Close and error codes of the Pusher protocol (sent in `pusher:error` and
//! as WebSocket close codes). The hundreds tell clients what to do:
//! 4000–4099 do not reconnect, 4100–4199 reconnect after backing off,
//! 4200–4299 reconnect at once.

/// 4000: the connection must use TLS.
pub const SSL_ONLY: u16 = 4000;
/// 4001: no app with this key.
pub const APP_DOES_NOT_EXIST: u16 = 4001;
/// 4003: the app is disabled.
pub const APP_DISABLED: u16 = 4003;
/// 4004: the app reached its connection quota.
pub const OVER_CONNECTION_QUOTA: u16 = 4004;
/// 4005: the request path is not `/app/{key}`.
pub const PATH_NOT_FOUND: u16 = 4005;
/// 4006: the `protocol` query parameter is not a valid number.
pub const INVALID_VERSION_FORMAT: u16 = 4006;
/// 4007: the protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: u16 = 4007;
/// 4008: no protocol version was given.
pub const NO_PROTOCOL_VERSION: u16 = 4008;
/// 4009: the connection is not authorized (bad signature or token).
pub const UNAUTHORIZED: u16 = 4009;
/// 4100: the server is over capacity, or this client consumed too slowly.
pub const OVER_CAPACITY: u16 = 4100;
/// 4200: generic "reconnect immediately" (e.g. server shutting down).
pub const RECONNECT_IMMEDIATELY: u16 = 4200;
/// 4201: the client did not answer a ping in time.
pub const PONG_NOT_RECEIVED: u16 = 4201;
/// 4202: closed after a period of inactivity.
pub const CLOSED_AFTER_INACTIVITY: u16 = 4202;
/// 4300: client event rejected (wrong channel type, not subscribed, too big).
pub const CLIENT_EVENT_REJECTED: u16 = 4300;
/// 4301: client event rate limit exceeded.
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
