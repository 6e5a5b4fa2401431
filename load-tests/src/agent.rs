//! A simulated agent desktop: connects, goes available, accepts every offer,
//! answers every customer message once, and after a session ends waits its
//! wrap-up time before taking work again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::customer::{FAILOVER_TIMEOUT, RESEND_AFTER, RESEND_CODES};
use crate::flows::Failover;
use crate::stats::{Stats, count, hist};
use crate::wire::{self, Endpoint, Incoming, Socket};

/// How an agent behaves.
#[derive(Debug, Clone)]
pub struct AgentBehaviour {
    /// Set `available` again this long after the agent's last session ended.
    pub wrap_up: Duration,
}

/// What the agent knows of one session.
#[derive(Default)]
struct HeldSession {
    /// Highest `seq` received: events at or below it are duplicates.
    last_seq: u64,
    /// Stamp of the first customer message, for time-to-offer.
    first_stamp: Option<u64>,
    /// Accepted and `assigned` seen: messages now get replies at once.
    assigned: bool,
    /// Customer stamps received before `assigned`, answered once it comes.
    unanswered: Vec<u64>,
}

/// What the agent sends after reading a frame.
enum Action {
    /// Answer the customer message stamped `stamp`.
    Reply { session: String, stamp: u64 },
    /// Take the offered session.
    Accept { session: String },
    /// Set available again (after wrap-up).
    Available,
    /// Send a reply again that was refused as unavailable.
    Resend { client_message_id: String },
}

/// A new socket on another node, after its `welcome`.
struct Reconnected {
    socket: Socket,
    /// Sessions offered to the agent meanwhile, to accept.
    offers: Vec<String>,
    /// Frames that came before the `welcome`.
    early: Vec<Incoming>,
}

/// A reply without its ack yet: resent, with the same client message id,
/// after a reconnect.
struct PendingReply {
    sent: Instant,
    session: String,
    body: String,
}

/// One agent until `stop` turns true (or the server closes the socket).
pub struct AgentRun {
    pub id: String,
    pub token: String,
    pub source: IpAddr,
    pub endpoint: Endpoint,
    pub behaviour: AgentBehaviour,
    pub stats: Stats,
    /// Where to go when the node under the socket dies.
    pub failover: Failover,
}

impl AgentRun {
    /// Connects and signs in, so that the agent takes offers from then on.
    pub async fn connect(&self) -> Result<Socket> {
        let started = Instant::now();
        let path = format!("/ws/agent?token={}", self.token);
        let mut socket = wire::connect(&self.endpoint, self.source, &path)
            .await
            .with_context(|| format!("agent {}", self.id))?;
        wire::send(&mut socket, wire::hello("h", &[])).await?;
        wire::expect(&mut socket, "welcome", Duration::from_secs(30), |_| {}).await?;
        wire::send(&mut socket, wire::available()).await?;
        wire::expect(&mut socket, "presence", Duration::from_secs(30), |_| {}).await?;
        self.stats
            .record(hist::CONNECT, started.elapsed().as_micros() as u64);
        self.stats.add(count::CONNECTED, 1);
        Ok(socket)
    }

    /// Works `socket` until `stop`. When the socket fails and there are
    /// other nodes, reconnects to one and goes on ([`AgentRun::fail_over`]).
    pub async fn work(mut self, mut socket: Socket, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut sessions: HashMap<String, HeldSession> = HashMap::new();
        let mut pending_acks: HashMap<String, PendingReply> = HashMap::new();
        let mut n_sent: u64 = 0;
        let mut n_active: u32 = 0;
        let mut available_at: Option<tokio::time::Instant> = None;
        let mut stopping = false;
        let mut stop_by = tokio::time::Instant::now();
        let mut lost = false;
        // Replies refused as unavailable (nothing stored): resent after a pause.
        let mut refused: Vec<String> = Vec::new();
        let mut resend_at: Option<tokio::time::Instant> = None;
        let result = loop {
            if stopping && pending_acks.is_empty() {
                break Ok(());
            }
            let wake = available_at
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let mut out = Vec::new();
            if lost {
                lost = false;
                // The reconnect resends every reply without an ack.
                refused.clear();
                resend_at = None;
                let Reconnected {
                    socket: new_socket,
                    offers,
                    early,
                } = self.fail_over(&sessions).await?;
                socket = new_socket;
                for frame in early {
                    self.handle(
                        frame,
                        &mut sessions,
                        &mut pending_acks,
                        &mut n_active,
                        &mut available_at,
                        &mut out,
                    );
                }
                out.extend(offers.into_iter().map(|session| Action::Accept { session }));
                if available_at.is_none() {
                    out.push(Action::Available);
                }
                out.extend(pending_acks.keys().map(|id| Action::Resend {
                    client_message_id: id.clone(),
                }));
            } else {
                tokio::select! {
                    changed = stop.changed(), if !stopping => {
                        if changed.is_err() || *stop.borrow() {
                            // Wait for the acks still on their way, then stop.
                            stopping = true;
                            stop_by = tokio::time::Instant::now() + Duration::from_secs(10);
                        }
                    }
                    _ = tokio::time::sleep_until(stop_by), if stopping => {
                        self.stats.error(format!("agent {}: {} acks missing at the end", self.id, pending_acks.len()));
                        break Ok(());
                    }
                    _ = tokio::time::sleep_until(wake), if available_at.is_some() => {
                        available_at = None;
                        out.push(Action::Available);
                    }
                    _ = tokio::time::sleep_until(resend_at.unwrap_or_else(tokio::time::Instant::now)), if resend_at.is_some() => {
                        resend_at = None;
                        for id in refused.drain(..) {
                            if pending_acks.contains_key(&id) {
                                self.stats.add(count::RESENT_AFTER_UNAVAILABLE, 1);
                                out.push(Action::Resend { client_message_id: id });
                            }
                        }
                    }
                    text = wire::next_text(&mut socket) => {
                        let text = match text {
                            Ok(Some(text)) => text,
                            Ok(None) | Err(_) if self.failover.possible() => {
                                lost = true;
                                continue;
                            }
                            Ok(None) => break Err(anyhow::anyhow!("agent {}: the server closed the socket", self.id)),
                            Err(err) => break Err(err),
                        };
                        let frame = Incoming::parse(&text)?;
                        // In a run that kills a node, a reply refused as
                        // unavailable is resent (unless acked meanwhile);
                        // otherwise such a refusal is an error.
                        if self.failover.possible()
                            && frame.kind == "error"
                            && let (Some(code), Some(id)) = (&frame.code, &frame.client_message_id)
                            && RESEND_CODES.contains(&code.as_str())
                        {
                            if pending_acks.contains_key(id) && !refused.contains(id) {
                                refused.push(id.clone());
                                resend_at.get_or_insert_with(|| tokio::time::Instant::now() + RESEND_AFTER);
                            }
                            continue;
                        }
                        self.handle(frame, &mut sessions, &mut pending_acks, &mut n_active, &mut available_at, &mut out);
                    }
                }
            }
            for action in out {
                let frame = match action {
                    Action::Accept { session } => wire::accept(&session),
                    Action::Available => wire::available(),
                    Action::Resend { client_message_id } => {
                        let reply = &pending_acks[&client_message_id];
                        wire::agent_message(&reply.session, &client_message_id, &reply.body)
                    }
                    Action::Reply { session, stamp } => {
                        n_sent += 1;
                        let client_message_id = format!("a{n_sent}");
                        let body = wire::reply_body(stamp, wire::now_ns());
                        let frame = wire::agent_message(&session, &client_message_id, &body);
                        pending_acks.insert(
                            client_message_id,
                            PendingReply {
                                sent: Instant::now(),
                                session,
                                body,
                            },
                        );
                        self.stats.add(count::AGENT_SENT, 1);
                        frame
                    }
                };
                // A reply that cannot go now waits in `pending_acks` for the reconnect.
                if !lost && let Err(err) = wire::send(&mut socket, frame).await {
                    if !self.failover.possible() {
                        return Err(err);
                    }
                    lost = true;
                }
            }
        };
        self.stats.add(count::CONNECTED, -1);
        // The run is over either way; a failed close changes nothing measured.
        let _ = socket.close(None).await;
        result
    }

    /// The socket is gone (its node was killed): connects to another node,
    /// says `hello` with the last `seq` of every session held (the replay
    /// brings what was missed), and answers the sessions offered meanwhile.
    async fn fail_over(&mut self, sessions: &HashMap<String, HeldSession>) -> Result<Reconnected> {
        self.stats.add(count::CONNECTED, -1);
        let lost_at = Instant::now();
        let order = wire::failover_order(
            &self.failover.nodes,
            self.endpoint.addr,
            self.failover.spread,
        );
        let path = format!("/ws/agent?token={}", self.token);
        let last_seq: Vec<(String, u64)> = sessions
            .iter()
            .filter(|(_, held)| held.last_seq > 0)
            .map(|(id, held)| (id.clone(), held.last_seq))
            .collect();
        let deadline = tokio::time::Instant::now() + FAILOVER_TIMEOUT;
        let (socket, welcome, early) = loop {
            let (mut socket, addr) =
                wire::connect_any(&order, self.source, &path, FAILOVER_TIMEOUT)
                    .await
                    .with_context(|| {
                        format!("agent {} after losing {}", self.id, self.endpoint.addr)
                    })?;
            self.endpoint.addr = addr;
            let mut early = Vec::new();
            match hello_once(&mut socket, &last_seq, &mut early, deadline).await? {
                Some(welcome) => break (socket, welcome, early),
                // Refused while the agent's actor moves between nodes: a
                // new socket, since this one has sent live events already
                // and would replay only after them.
                None => {
                    // Replaced either way; a failed close changes nothing.
                    let _ = socket.close(None).await;
                    tokio::time::sleep(RESEND_AFTER).await;
                }
            }
        };
        self.stats.record(
            hist::FAILOVER_RECONNECT,
            lost_at.elapsed().as_micros() as u64,
        );
        self.stats.add(count::RECONNECTED, 1);
        self.stats.add(count::CONNECTED, 1);
        let offers = welcome
            .offers
            .into_iter()
            .map(|offer| offer.session)
            .collect();
        Ok(Reconnected {
            socket,
            offers,
            early,
        })
    }

    /// Reacts to one frame; what to send goes to `out`.
    fn handle(
        &self,
        frame: Incoming,
        sessions: &mut HashMap<String, HeldSession>,
        pending_acks: &mut HashMap<String, PendingReply>,
        n_active: &mut u32,
        available_at: &mut Option<tokio::time::Instant>,
        out: &mut Vec<Action>,
    ) {
        match frame.kind.as_str() {
            "ack" => {
                if let Some(reply) = frame
                    .client_message_id
                    .and_then(|id| pending_acks.remove(&id))
                {
                    self.stats
                        .record(hist::AGENT_ACK, reply.sent.elapsed().as_micros() as u64);
                    self.stats.add(count::AGENT_ACKED, 1);
                }
                return;
            }
            "error" => {
                let code = frame.code.unwrap_or_else(|| "unknown".into());
                // A reply racing the customer's `leave` finds the session over:
                // the scenario's own race, not a server fault.
                if matches!(
                    code.as_str(),
                    "invalid_state" | "unknown_session" | "session_closed"
                ) {
                    self.stats.add("agent_replies_refused_session_ended", 1);
                    // Answered (refused): no ack is coming for it.
                    if let Some(id) = &frame.client_message_id {
                        pending_acks.remove(id);
                    }
                } else if code == "not_your_session"
                    && frame
                        .request_id
                        .is_some_and(|id| id.starts_with(wire::ACCEPT_REQUEST))
                {
                    // An accept racing the customer's abandoning (or the
                    // offer's lapse) finds the offer gone: also the
                    // scenario's race. Answered + abandoned still has to
                    // add up to the arrivals.
                    self.stats.add("agent_accepts_refused_offer_gone", 1);
                } else {
                    self.stats.error(format!("agent error frame: {code}"));
                }
                return;
            }
            _ => {}
        }
        let (Some(session_id), Some(seq)) = (frame.session.clone(), frame.seq) else {
            return;
        };
        let session = sessions.entry(session_id.clone()).or_default();
        // Live-only frames carry the last stored `seq`: no event of their own.
        if !matches!(frame.kind.as_str(), "typing" | "response_due") {
            if seq <= session.last_seq {
                self.stats.add(count::DUPLICATES, 1);
                return;
            }
            // While the agent holds a session it sees every stored event of it.
            if session.assigned && seq > session.last_seq + 1 {
                self.stats
                    .add(count::SKIPPED, (seq - session.last_seq - 1) as i64);
                if std::env::var_os("LOADGEN_DEBUG").is_some() {
                    eprintln!(
                        "agent {}: session {session_id} jumped from seq {} to {seq}",
                        self.id, session.last_seq
                    );
                }
            }
            session.last_seq = seq;
        }
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            eprintln!(
                "agent {} <- {} {session_id} seq {seq} (assigned {})",
                self.id, frame.kind, session.assigned
            );
        }
        match frame.kind.as_str() {
            "message" if frame.sender.as_deref() == Some("customer") => {
                self.stats.add(count::AGENT_RECEIVED, 1);
                let Some(stamp) = frame.body.as_deref().and_then(wire::customer_stamp) else {
                    return;
                };
                if session.first_stamp.is_none() {
                    session.first_stamp = Some(stamp);
                }
                if session.assigned {
                    self.stats
                        .record(hist::CUSTOMER_TO_AGENT, wire::micros_since(stamp));
                    out.push(Action::Reply {
                        session: session_id,
                        stamp,
                    });
                } else {
                    session.unanswered.push(stamp);
                }
            }
            "offer" => {
                if let Some(stamp) = session.first_stamp {
                    self.stats
                        .record(hist::TIME_TO_OFFER, wire::micros_since(stamp));
                }
                out.push(Action::Accept {
                    session: session_id,
                });
            }
            "assigned" if !session.assigned => {
                session.assigned = true;
                *n_active += 1;
                *available_at = None;
                for stamp in session.unanswered.drain(..) {
                    out.push(Action::Reply {
                        session: session_id.clone(),
                        stamp,
                    });
                }
            }
            "closed" | "abandoned" | "transferred" | "offer_withdrawn" => {
                let was_assigned = session.assigned;
                if frame.kind != "offer_withdrawn" || !was_assigned {
                    sessions.remove(&session_id);
                }
                if was_assigned && frame.kind != "offer_withdrawn" {
                    *n_active = n_active.saturating_sub(1);
                    if *n_active == 0 {
                        *available_at = Some(tokio::time::Instant::now() + self.behaviour.wrap_up);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Says `hello` once and reads until the `welcome` (`None` when it is
/// refused as unavailable: the agent's actor is moving between nodes, "retry").
/// Live events can come before the welcome; the server counts them as
/// delivered, so they are kept in `early`.
async fn hello_once(
    socket: &mut Socket,
    last_seq: &[(String, u64)],
    early: &mut Vec<Incoming>,
    deadline: tokio::time::Instant,
) -> Result<Option<Incoming>> {
    wire::send(socket, wire::hello("h", last_seq)).await?;
    loop {
        let text = tokio::time::timeout_at(deadline, wire::next_text(socket))
            .await
            .context("no `welcome` after a reconnect")??
            .context("the server closed before `welcome`")?;
        let frame = Incoming::parse(&text)?;
        match frame.kind.as_str() {
            "welcome" => return Ok(Some(frame)),
            "error" => {
                let code = frame.code.unwrap_or_default();
                if RESEND_CODES.contains(&code.as_str()) && tokio::time::Instant::now() < deadline {
                    return Ok(None);
                }
                anyhow::bail!(
                    "error frame while waiting for `welcome`: {code} {}",
                    frame.message.unwrap_or_default()
                );
            }
            _ => early.push(frame),
        }
    }
}
