//! Signalling: switchboard as a SIP endpoint on top of rsipstack.
//!
//! ```text
//!            UDP + TCP (config.listen)
//!                     │
//!              endpoint::SipEndpoint ── new server transactions
//!        ┌────────────┼──────────────────────┬──────────────┐
//!   OPTIONS 200   REGISTER              INVITE            in-dialog
//!                 registrar::Registrar  rate::RateLimiter  the dialog
//!                 (digest::DigestAuth,  trunk::TrunkPolicy (BYE, INFO,
//!                  SipCredentialSource) call slots         re-INVITE)
//!                                       call::CallHandler ◀─ the call flow
//! ```
//!
//! The call flow (phone sessions in the runtime) plugs in through
//! [`call::CallHandler`] and reads phones through [`registrar::Registrar`];
//! the runtime supplies agents' credentials through
//! [`registrar::SipCredentialSource`].

pub mod call;
pub mod config;
pub mod digest;
pub mod endpoint;
pub mod metrics;
pub mod rate;
pub mod registrar;
pub mod trunk;

pub use call::{CallHandler, Dialogs, IncomingCall};
pub use config::{IvrConfig, TrunkConfig, VoiceConfig};
pub use digest::{DigestAlgorithm, credentials};
pub use endpoint::{LOG_FILTER_DIRECTIVE, SipEndpoint, StartError};
pub use registrar::{Binding, PhoneState, Registrar, SipCredentialSource};
