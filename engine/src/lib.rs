//! switchboard's pure core.
//!
//! Everything a contact center decides lives here as plain synchronous code:
//! the domain ([`channel`], [`envelope`], [`customer`], [`agent`], [`group`],
//! [`session`], [`message`]), routing rules ([`routing`]), queue ordering and agent selection
//! ([`queue`], [`presence`]), SLA arithmetic ([`sla`]), the estimated wait
//! ([`wait`]) and sliding-window limits ([`limit`]); the data platform's
//! tickets ([`ticket`]), knowledge search ([`kb`]), reply templates
//! ([`assist`]), session summaries ([`summary`]) and the webhook outbox ([`outbox`]);
//! configured keys and passwords that never print ([`secret`]); supervisors'
//! actions and their audit record ([`supervision`]). Persisting
//! them is the `store` crate's work.
//!
//! Architecture invariant: nothing here performs IO or awaits (the crate
//! depends on no async runtime or database client); the state machines take
//! the current time as an argument instead of reading a clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod assist;
pub mod channel;
pub mod customer;
pub mod envelope;
pub mod error;
pub mod group;
pub mod ids;
pub mod kb;
pub mod limit;
pub mod message;
pub mod outbox;
pub mod placement;
pub mod presence;
pub mod queue;
pub mod routing;
pub mod secret;
pub mod session;
pub mod sla;
pub mod summary;
pub mod supervision;
pub mod text;
pub mod ticket;
pub mod wait;

pub use error::EngineError;

/// Milliseconds since the Unix epoch. Engine code takes time as an argument in
/// this unit so that state machines are deterministic and testable.
pub type Millis = i64;

/// The current wall-clock time in [`Millis`]; for the edges (actors, binaries), not for engine logic.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
