//! switchboard's message channels: the SDK a platform adapter is written
//! against, and the adapters.
//!
//! - [`adapter`]: the [`ChannelAdapter`] trait and what it reads and gives
//!   back ([`InboundRequest`], [`Received`], [`PlatformAnswer`],
//!   [`OutboundMessage`]).
//! - [`registry`]: the `[[channels]]` configuration and the adapters it
//!   builds, one per account, found by name.
//! - [`webhook`]: the generic signed JSON webhook channel (kind `webhook`).
//! - [`qq`]: the QQ bot channel (kind `qq`): QQ's official bot platform in
//!   webhook mode, one-to-one and group @-messages in, passive replies out.
//! - [`wechat`]: WeChat official accounts (kind `wechat`): signed (or, in
//!   safe mode, encrypted) XML pushes in, customer-service messages out
//!   with a shared access token.
//! - [`bridge`]: out-of-process adapters (kind `bridge`): a program in any
//!   language speaks for a platform over one WebSocket; the frames and the
//!   account's connection slot.
//! - [`signature`]: the `X-Switchboard-Signature` HMAC, shared with the
//!   gateway's outbound webhooks.
//! - [`limits`]: the lengths every way in checks.
//!
//! Architecture invariant: an adapter reads and writes one platform's wire
//! format and decides nothing else. It holds no routing logic and stores
//! nothing; the gateway takes what it parses into the runtime and answers
//! the platform once it is durable.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod bridge;
pub mod error;
pub mod limits;
pub mod qq;
mod receipts;
pub mod registry;
pub mod signature;
pub mod webhook;
pub mod wechat;

#[cfg(test)]
mod proptests;

pub use adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundMessage,
    InboundRequest, Notice, OutboundMessage, PlatformAnswer, Receipt, ReceiptStatus, Received,
};
pub use error::ChannelError;
pub use limits::InboundLimits;
pub use registry::{ChannelConfig, ChannelConfigError, Registry};
