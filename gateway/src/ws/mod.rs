//! The WebSocket protocol (PROTOCOL.md).

pub mod agent;
pub mod customer;
