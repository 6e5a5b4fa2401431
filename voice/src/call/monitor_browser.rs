//! A supervisor following a phone call in their browser (docs/supervisor.md,
//! "Monitoring calls"): when the supervisor takes calls in the browser
//! (`Softphones`), following a call does not ring their SIP phone; their
//! desktop offers a WebRTC leg instead ([`CallFlow::monitor_offer`]), which
//! becomes the call's supervisor leg once connected — the same three-way
//! mix as a phone's.
//!
//! | the session / the browser                   | the supervisor's leg                                |
//! |---------------------------------------------|-----------------------------------------------------|
//! | `monitored` listen / whisper / barge        | nothing rings: the desktop offers                    |
//! | their offer, while they follow              | answered; a phone of theirs ringing is cancelled      |
//! | the leg connects                            | the media task takes it (`CallMedia::supervise`)      |
//! | `monitored` with another mode               | `CallMedia::monitor`: who hears whom changes at once  |
//! | `monitored` stop, the call's end            | the leg is closed                                    |
//! | the browser closes it, or its network goes  | `monitor_session(stop)`, as the desktop's Stop         |
//! | it never connects                           | they follow in the desktop only (logged)              |
//!
//! [`CallFlow::monitor_offer`]: super::CallFlow::monitor_offer

use engine::ids::AgentId;
use tracing::{debug, info};

use super::browser::{BrowserCallError, BrowserCallLeg};
use super::monitor::stop_monitoring;
use super::task::CallTask;
use crate::media::AgentLeg;
use crate::media::mix::Monitoring;
use crate::webrtc::{BrowserEnd, BrowserEvent};

/// A monitoring supervisor's browser leg, connecting or connected.
pub(super) struct SupervisorBrowserLeg {
    browser: BrowserCallLeg,
    /// How they follow the call, as the session's last `monitored` said.
    monitoring: Monitoring,
}

impl CallTask {
    /// Notes how `supervisor` follows the call now (`None`: not at all).
    pub(super) fn note_follower(&mut self, supervisor: &AgentId, monitoring: Option<Monitoring>) {
        self.following.retain(|(who, _)| who != supervisor);
        if let Some(monitoring) = monitoring {
            self.following.push((supervisor.clone(), monitoring));
        }
    }

    /// The session's `monitored` event as far as browsers go; true when it
    /// is dealt with here (no phone is to ring or change).
    pub(super) fn on_monitored_in_browser(
        &mut self,
        supervisor: &AgentId,
        monitoring: Option<Monitoring>,
    ) -> bool {
        let session = self.session();
        if let Some(leg) = self.supervisor_browser.as_mut() {
            if &leg.browser.agent != supervisor {
                // Only one supervisor hears a call; a second follows in the desktop.
                if monitoring.is_some() {
                    info!(session_id = %session, supervisor = %supervisor, on_the_call = %leg.browser.agent, "another supervisor's browser is on the call: this one follows in the desktop only");
                }
                return monitoring.is_some();
            }
            match monitoring {
                Some(monitoring) => {
                    leg.monitoring = monitoring;
                    if leg.browser.answered {
                        let switched = self.live.media.monitor(monitoring);
                        self.media_result(switched);
                    }
                }
                None => {
                    info!(session_id = %session, supervisor = %supervisor, "monitoring stopped: closing the supervisor's browser leg");
                    self.drop_supervisor_browser_leg();
                }
            }
            return true;
        }
        let no_phone_of_theirs = self.supervisor.is_none();
        if monitoring.is_some()
            && no_phone_of_theirs
            && self.inner.softphones.prefers_browser(supervisor)
        {
            debug!(session_id = %session, supervisor = %supervisor, "the supervisor takes calls in the browser: their desktop connects");
            return true;
        }
        false
    }

    /// `supervisor`'s browser offers to hear the call they follow: answered
    /// here; it joins the call once connected.
    pub(super) fn monitor_offer(
        &mut self,
        supervisor: AgentId,
        offer: &str,
    ) -> Result<String, BrowserCallError> {
        if self.ended {
            return Err(BrowserCallError::Ended);
        }
        let Some(monitoring) = self
            .following
            .iter()
            .find(|(who, _)| who == &supervisor)
            .map(|(_, monitoring)| *monitoring)
        else {
            return Err(BrowserCallError::NotFollowing);
        };
        let phone_of_another = self
            .supervisor
            .as_ref()
            .is_some_and(|leg| !leg.is_for(&supervisor));
        let browser_of_another = self
            .supervisor_browser
            .as_ref()
            .is_some_and(|leg| leg.browser.agent != supervisor);
        if phone_of_another || browser_of_another {
            return Err(BrowserCallError::SupervisorOnTheCall);
        }
        let (browser, answer) = self.open_browser_leg(supervisor, offer)?;
        // The browser takes over from a phone of theirs (rung before they
        // chose the browser) and from a leg of an earlier offer (a reload).
        self.drop_supervisor_leg();
        self.drop_supervisor_browser_leg();
        info!(session_id = %self.session(), supervisor = %browser.agent, ?monitoring, "the supervisor's browser joins the call: connecting");
        self.supervisor_browser = Some(SupervisorBrowserLeg {
            browser,
            monitoring,
        });
        Ok(answer)
    }

    /// `agent`'s monitoring browser leg, if they have one.
    pub(super) fn supervisor_browser_of(&self, agent: &AgentId) -> Option<&BrowserCallLeg> {
        self.supervisor_browser
            .as_ref()
            .map(|leg| &leg.browser)
            .filter(|browser| &browser.agent == agent)
    }

    pub(super) async fn on_supervisor_browser_event(&mut self, event: Option<BrowserEvent>) {
        match event {
            Some(BrowserEvent::Connected) => self.supervisor_browser_connected(),
            Some(BrowserEvent::Ended(end)) => self.supervisor_browser_ended(end).await,
            None => self.drop_supervisor_browser_leg(),
        }
    }

    fn supervisor_browser_connected(&mut self) {
        let session = self.session();
        let Some(leg) = self.supervisor_browser.as_mut() else {
            return;
        };
        leg.browser.answered = true;
        let monitoring = leg.monitoring;
        let remote = Some(leg.browser.leg.media_addr());
        info!(session_id = %session, supervisor = %leg.browser.agent, ?monitoring, "the supervisor's browser is connected: monitoring the call");
        if let Some(socket) = leg.browser.socket.take() {
            let supervised = self
                .live
                .media
                .supervise(AgentLeg { socket, remote }, monitoring);
            self.media_result(supervised);
        }
    }

    async fn supervisor_browser_ended(&mut self, end: BrowserEnd) {
        let Some(leg) = self.supervisor_browser.take() else {
            return;
        };
        let session = self.session();
        let supervisor = leg.browser.agent;
        // A mode change on its way must not ring their phone instead.
        self.supervisors_done.push(supervisor.clone());
        if !leg.browser.answered {
            info!(session_id = %session, supervisor = %supervisor, ?end, "the supervisor's browser did not connect: they follow the call in the desktop only");
            return;
        }
        self.media_result(self.live.media.release_supervisor());
        if self.ended {
            return;
        }
        info!(session_id = %session, supervisor = %supervisor, ?end, "the supervisor's browser left the call: monitoring stops");
        stop_monitoring(self.switchboard(), &supervisor, session).await;
    }

    /// Closes the monitoring browser leg without waiting (its task says
    /// goodbye to the browser).
    pub(super) fn drop_supervisor_browser_leg(&mut self) {
        let Some(leg) = self.supervisor_browser.take() else {
            return;
        };
        if leg.browser.answered {
            self.media_result(self.live.media.release_supervisor());
        }
        drop(leg.browser.socket);
        tokio::spawn(leg.browser.leg.close());
    }
}

/// The monitoring browser leg's next event; pending while there is none.
pub(super) async fn next_supervisor_browser_event(
    leg: &mut Option<SupervisorBrowserLeg>,
) -> Option<BrowserEvent> {
    match leg {
        Some(leg) => leg.browser.events.recv().await,
        None => std::future::pending().await,
    }
}
