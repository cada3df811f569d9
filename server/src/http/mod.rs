//! HTTP in: the listener ([`server`]: WebSocket upgrades, the HTTP API,
//! health and metrics) and the Pusher HTTP API ([`api`]). (Webhooks, the
//! HTTP going out, are [`crate::webhooks`].)

pub mod api;
pub mod server;
