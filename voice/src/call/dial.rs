//! Ringing a phone from a call (the agent's, or a monitoring supervisor's)
//! and answering the offers it makes later in its dialog.

use std::net::SocketAddr;

use engine::ids::{AgentId, SessionId};
use rsipstack::dialog::dialog::{DialogStateReceiver, TransactionHandle};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Method, Request, StatusCode, Uri};
use tracing::{debug, info, warn};

use super::task::{CallTask, respond};
use crate::media::{
    Direction, LocalMedia, LocalSession, RemoteMedia, RtpSocket, SessionDescription, check_answer,
};

impl CallTask {
    /// The caller as the phones we ring show them.
    pub(super) fn caller_display_name(&self) -> String {
        match (&self.caller_name, self.caller_number.as_str()) {
            (Some(name), _) => name.clone(),
            (None, "") => "Anonymous".to_owned(),
            (None, number) => number.to_owned(),
        }
    }

    /// INVITEs the registered phone of `who` (an agent, or a supervisor:
    /// `role` in logs) from the caller's number, offering the caller's codec
    /// on a port of its own. `None` (logged) without a registered phone or
    /// a free port.
    pub(super) fn dial(&self, who: &AgentId, role: &str, display_name: String) -> Option<Dialled> {
        let session = self.session();
        let Some(binding) = self.registrar.contact(who.as_str()) else {
            debug!(session_id = %session, agent_id = %who, role, "no registered phone: the desktop only");
            return None;
        };
        let socket = match self.inner.ports.allocate() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(session_id = %session, agent_id = %who, role, %error, "cannot ring the phone: no rtp port");
                return None;
            }
        };
        let media = LocalMedia {
            address: SocketAddr::new(self.inner.public_ip, socket.local_addr().port()),
            format: self.live.answer.format,
            direction: Direction::SendRecv,
        };
        let mut sdp = LocalSession::new();
        let offer = sdp.describe(&media);
        let host = self.dialogs.contact().host_with_port.to_string();
        // A withheld number shows as `anonymous` (RFC 3323).
        let user = match self.caller_number.as_str() {
            "" => "anonymous",
            number => number,
        };
        let caller = Uri::try_from(format!("sip:{user}@{host}").as_str())
            .or_else(|_| Uri::try_from(format!("sip:caller@{host}").as_str()));
        let caller = match caller {
            Ok(caller) => caller,
            Err(error) => {
                warn!(session_id = %session, role, %error, "cannot ring the phone: no caller uri");
                return None;
            }
        };
        let option = InviteOption {
            caller_display_name: Some(display_name),
            caller,
            callee: binding.contact.clone(),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.into_bytes()),
            contact: self.dialogs.contact().clone(),
            ..Default::default()
        };
        let (state_tx, events) = self.dialogs.state_channel();
        let dialog = match self.dialogs.layer().do_invite_async(option, state_tx) {
            // The outcome comes as the dialog's states; the join handle is not needed.
            Ok((dialog, _outcome)) => dialog,
            Err(error) => {
                warn!(session_id = %session, agent_id = %who, role, %error, "cannot ring the phone");
                return None;
            }
        };
        Some(Dialled {
            phone: binding.contact,
            dialog,
            events,
            sdp,
            media,
            socket,
        })
    }
}

/// A phone we rang, its INVITE on its way.
pub(super) struct Dialled {
    /// Where it rings (the registered contact).
    pub(super) phone: Uri,
    pub(super) dialog: InviteDialog,
    pub(super) events: DialogStateReceiver,
    pub(super) sdp: LocalSession,
    pub(super) media: LocalMedia,
    /// The port offered to it.
    pub(super) socket: RtpSocket,
}

/// A phone's new offer (re-INVITE or UPDATE) in a dialog we started, as
/// answered.
pub(super) struct PhoneOffer {
    /// What the phone's SDP says now.
    pub(super) remote: RemoteMedia,
    /// The direction changed (a hold or a resume, not a refresh).
    pub(super) changed: bool,
}

/// Answers a re-INVITE or UPDATE from a phone we rang (an agent's or a
/// supervisor's): an offer without SDP gets ours, one that drops the
/// call's codec 488 (`None` then too), else 200 with our answer.
pub(super) async fn answer_phone_offer(
    session: SessionId,
    sdp: &mut LocalSession,
    media: &mut LocalMedia,
    request: &Request,
    handle: TransactionHandle,
) -> Option<PhoneOffer> {
    if request.body.is_empty() {
        let body = (request.method == Method::Invite).then(|| sdp.describe(media));
        respond(&handle, StatusCode::OK, body).await;
        return None;
    }
    let remote = match SessionDescription::parse(&request.body)
        .map_err(|error| error.to_string())
        .and_then(|offer| check_answer(&media.format, &offer).map_err(|error| error.to_string()))
    {
        Ok(remote) => remote,
        Err(error) => {
            info!(session_id = %session, %error, "phone's new offer refused (488)");
            respond(&handle, StatusCode::NotAcceptableHere, None).await;
            return None;
        }
    };
    let direction = remote.direction.answer();
    // A refresh (same direction) is not a hold or a resume.
    let changed = direction != media.direction;
    media.direction = direction;
    let body = sdp.describe(media);
    respond(&handle, StatusCode::OK, Some(body)).await;
    Some(PhoneOffer { remote, changed })
}
