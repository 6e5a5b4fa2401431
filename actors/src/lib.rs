//! switchboard's supervised actors and the in-process API the gateway calls.
//!
//! Start a system with [`Switchboard::start`]; every method of the returned
//! handle maps to one message to one actor (a session found through the
//! Directory, an agent or group through its registered reference).
//! The actors only adapt the pure logic of `engine` to messages, timers and IO.
//! The data platform ([`platform::Platform`]: tickets, knowledge, the 360°
//! view, the outbox worker) runs beside them and writes through the same
//! StoreWriter ([`Switchboard::write`]). Nothing here opens a socket or
//! knows a wire format: the gateway implements the platform's outward
//! traits ([`platform::Courier`], [`platform::EventEncoder`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod agent_supervisor;
pub mod clock;
pub mod directory;
pub mod error;
pub mod event;
pub mod group;
pub mod group_supervisor;
pub mod metrics;
pub mod platform;
pub mod refs;
pub mod remote;
pub mod root;
pub mod session;
pub mod session_supervisor;
pub mod shared;
pub mod store_writer;

mod handle;

pub use error::ApiError;
pub use event::{
    Audience, CallControl, CallEnd, CallEvent, DeliveryReport, DeliveryState, Event, EventKind,
    Subscription,
};
pub use group::QueueStatus;
pub use handle::{CallSession, CallStart, Intake, PendingAck, ReportScope, Switchboard};
pub use platform::{Notice, Platform};
pub use session::{Ack, SteerRequest, TransferTarget};
pub use shared::RuntimeConfig;

#[cfg(test)]
mod tests;
