//! The agent's SIP phone as one agent socket follows it: `welcome` says
//! whether it is registered, and a `phone` frame says when that changes.
//!
//! Each socket holds one receiver of the registrar's changes and keeps the
//! agent's own; a receiver that fell behind reads the registrar again, so a
//! missed change is never a wrong state.

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use voice::sip::{PhoneState, Registrar};

/// One socket's view of its agent's phone registration.
pub(super) struct PhoneWatch {
    registrar: Registrar,
    agent_id: String,
    changes: Receiver<PhoneState>,
    /// What the client was last told (in `welcome` or a `phone` frame), so
    /// that a change it already knows of is not sent again.
    told: bool,
}

impl PhoneWatch {
    /// Starts following `agent_id`'s phone; `None` when the phone channel
    /// is off.
    pub(super) fn start(registrar: Option<&Registrar>, agent_id: &str) -> Option<PhoneWatch> {
        let registrar = registrar?.clone();
        // Subscribed before the first read, so no change falls in between.
        let changes = registrar.subscribe();
        let told = registrar.is_registered(agent_id);
        Some(PhoneWatch {
            registrar,
            agent_id: agent_id.to_owned(),
            changes,
            told,
        })
    }

    /// Whether the phone is registered now, which the caller then tells the
    /// client (`welcome`).
    pub(super) fn tell_now(&mut self) -> bool {
        self.told = self.registrar.is_registered(&self.agent_id);
        self.told
    }

    /// Waits until the phone's registration differs from what the client
    /// was told, and returns the new one, which counts as told. Cancel-safe:
    /// nothing is awaited after a change is taken from the channel.
    pub(super) async fn changed(&mut self) -> bool {
        loop {
            let registered = match self.changes.recv().await {
                Ok(change) if change.agent_id == self.agent_id => change.registered,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => self.registrar.is_registered(&self.agent_id),
                // The SIP endpoint stopped: no more changes will come.
                Err(RecvError::Closed) => std::future::pending().await,
            };
            if registered != self.told {
                self.told = registered;
                return registered;
            }
        }
    }
}
