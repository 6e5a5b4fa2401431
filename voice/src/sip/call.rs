//! The seam between signalling and the call flow: an INVITE that passed the
//! trunk policy becomes an [`IncomingCall`] handed to a [`CallHandler`].
//!
//! The endpoint has already sent 100 Trying and runs the INVITE's server
//! transaction (retransmissions, CANCEL → 487, ACK); the handler decides
//! everything else through the dialog (`ringing`, `accept`, `reject`, `bye`)
//! and hears what the caller does on `events`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Transport, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::registrar::Registrar;

/// Takes new calls. Implemented by the call flow (for instance by sending a
/// message to the actor that owns phone sessions); it must not block.
pub trait CallHandler: Send + Sync + 'static {
    /// A caller is waiting. The handler owns the call from here: it must end
    /// it with `accept` + `bye`, or `reject` (e.g. 503 when it is
    /// overloaded), or the call slot stays taken until the caller hangs up.
    fn incoming_call(&self, call: IncomingCall);
}

/// A new call from a trunk.
pub struct IncomingCall {
    /// The caller's leg (UAS): answer, reject or hang up through it; its
    /// `initial_request()` is the INVITE (From, P-Asserted-Identity, SDP).
    pub dialog: InviteDialog,
    /// Everything that happens on the caller's leg: Confirmed (ACK), Info
    /// (DTMF), Updated (re-INVITE: hold), Terminated (BYE, CANCEL, timeout).
    /// The dialog is removed from the dialog layer and the call slot freed
    /// when Terminated arrives, whether or not this is read.
    pub events: DialogStateReceiver,
    /// Which configured trunk the call came from.
    pub trunk: Arc<str>,
    /// The INVITE's source address.
    pub source: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// For the call's other legs (ringing agents' phones).
    pub dialogs: Dialogs,
    /// Where agents' phones are: the call rings the offered agent's binding.
    pub registrar: Registrar,
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("dialog", &self.dialog.id())
            .field("trunk", &self.trunk)
            .field("source", &self.source)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// The dialog layer and what a leg needs from the endpoint; cheap to clone.
#[derive(Clone)]
pub struct Dialogs {
    pub(crate) layer: Arc<DialogLayer>,
    pub(crate) contact: Uri,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
}

impl Dialogs {
    /// rsipstack's dialog layer: `do_invite_async` for an agent's leg.
    pub fn layer(&self) -> &Arc<DialogLayer> {
        &self.layer
    }

    /// Our Contact URI (`sip:<public address>:<port>`), for the legs we start.
    pub fn contact(&self) -> &Uri {
        &self.contact
    }

    /// A state channel for new dialogs: every dialog that reports
    /// `Terminated` on it is removed from the layer (rsipstack leaks it
    /// otherwise), and then the state is passed on.
    pub fn state_channel(&self) -> (DialogStateSender, DialogStateReceiver) {
        self.state_channel_holding(None)
    }

    /// As [`Dialogs::state_channel`]; `slot` is released when the dialog
    /// `slot.0` terminates (or the channel closes).
    pub(crate) fn state_channel_holding(
        &self,
        slot: Option<(DialogIdCell, CallSlot)>,
    ) -> (DialogStateSender, DialogStateReceiver) {
        let (inner_tx, mut inner_rx) = self.layer.new_dialog_state_channel();
        let (outer_tx, outer_rx) = self.layer.new_dialog_state_channel();
        let layer = self.layer.clone();
        let forward = async move {
            let mut slot = slot;
            while let Some(state) = inner_rx.recv().await {
                if let DialogState::Terminated(id, _) = &state {
                    layer.remove_dialog(id);
                    if slot.as_ref().is_some_and(|(primary, _)| primary.is(id)) {
                        slot = None;
                    }
                }
                // The call flow may have dropped its receiver: nothing to tell.
                let _ = outer_tx.send(state);
            }
        };
        self.tasks
            .spawn(self.cancel.clone().run_until_cancelled_owned(forward));
        (inner_tx, outer_rx)
    }
}

/// The id of the dialog a call slot belongs to, set once the dialog exists
/// (the state channel must exist before the dialog does).
#[derive(Clone, Default)]
pub(crate) struct DialogIdCell(Arc<std::sync::OnceLock<DialogId>>);

impl DialogIdCell {
    pub(crate) fn set(&self, id: DialogId) {
        // Set once, right after the dialog is created; a second set cannot happen.
        let _ = self.0.set(id);
    }

    fn is(&self, id: &DialogId) -> bool {
        self.0.get() == Some(id)
    }
}

/// The cap on calls at once (`voice.max_calls`).
#[derive(Debug, Clone)]
pub(crate) struct CallSlots {
    active: Arc<AtomicUsize>,
    max: usize,
}

impl CallSlots {
    pub(crate) fn new(max: usize) -> Self {
        CallSlots {
            active: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or `None` when `max` calls are up.
    pub(crate) fn try_acquire(&self) -> Option<CallSlot> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| CallSlot {
                active: self.active.clone(),
            })
    }

    /// Calls up now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// One call's share of `voice.max_calls`; freed on drop.
#[derive(Debug)]
pub(crate) struct CallSlot {
    active: Arc<AtomicUsize>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_slots_cap_and_free_on_drop() {
        let slots = CallSlots::new(2);
        let first = slots.try_acquire().unwrap();
        let second = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.active(), 2);
        drop(first);
        assert_eq!(slots.active(), 1);
        let third = slots.try_acquire().unwrap();
        drop((second, third));
        assert_eq!(slots.active(), 0);
    }
}
