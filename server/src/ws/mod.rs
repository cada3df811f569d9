//! The WebSocket transport, with no knowledge of Pusher or apps: the RFC
//! 6455 frame codec in both directions ([`frame`]), reading client
//! messages within a byte budget ([`reader`]), and a connection's bounded
//! outbound queue with its writer and the fan-out ([`outbound`]). The
//! protocol on top is [`crate::connection`].

pub mod frame;
pub mod outbound;
pub mod reader;
