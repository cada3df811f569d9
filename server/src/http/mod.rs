//! HTTP: the listener ([`server`]: WebSocket upgrades, the HTTP API,
//! health and metrics), the Pusher HTTP API ([`api`]) and outgoing
//! webhooks ([`webhooks`]).

pub mod api;
pub mod server;
pub mod webhooks;
