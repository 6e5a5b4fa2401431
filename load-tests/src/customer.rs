//! A simulated customer on `/ws/customer`: one connection and what it has
//! seen, the frames it sends, and what it counts and times.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stats::{Stats, count, hist};
use crate::wire::{self, Endpoint, Incoming, Socket};

/// What one frame meant for the customer.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// An agent took the session.
    Assigned,
    /// The agent's answer to one of our messages.
    Reply,
    /// One of our messages is durable.
    Acked,
    /// The agent wrapped up the conversation.
    WrapUp,
    /// The session is over (`closed` or `abandoned`).
    Ended,
    /// Anything else.
    Other,
}

/// A customer's connection and conversation.
pub struct Customer {
    pub token: String,
    pub source: IpAddr,
    pub endpoint: Endpoint,
    pub stats: Stats,
    /// Used for client message ids unique to this customer.
    pub tag: String,
    socket: Option<Socket>,
    /// The open session, from the first ack.
    pub session: Option<String>,
    /// Highest stored-event `seq` seen, per session.
    last_seq: HashMap<String, u64>,
    /// Unacknowledged messages: client message id → (sent, body).
    pending_acks: HashMap<String, (Instant, String)>,
    /// Stamps of our messages still waiting for the agent's reply.
    pub outstanding: HashSet<u64>,
    n_sent: u64,
    first_sent: Option<Instant>,
    pub assigned: bool,
    /// The service-level threshold, for counting answers within it.
    pub sl_threshold: Duration,
}

impl Customer {
    pub fn new(
        token: String,
        source: IpAddr,
        endpoint: Endpoint,
        stats: Stats,
        tag: String,
    ) -> Customer {
        Customer {
            token,
            source,
            endpoint,
            stats,
            tag,
            socket: None,
            session: None,
            last_seq: HashMap::new(),
            pending_acks: HashMap::new(),
            outstanding: HashSet::new(),
            n_sent: 0,
            first_sent: None,
            assigned: false,
            sl_threshold: Duration::from_secs(20),
        }
    }

    /// Connects and says `hello` (with `last_seq` after a drop); times it as
    /// `histogram`.
    pub async fn connect(&mut self, histogram: &'static str) -> Result<()> {
        let started = Instant::now();
        let path = format!("/ws/customer?token={}&channel=web", self.token);
        let mut socket = wire::connect(&self.endpoint, self.source, &path).await?;
        let last_seq: Vec<(String, u64)> =
            self.last_seq.iter().map(|(s, q)| (s.clone(), *q)).collect();
        wire::send(&mut socket, wire::hello("h", &last_seq)).await?;
        let mut early = Vec::new();
        wire::expect(&mut socket, "welcome", Duration::from_secs(30), |frame| {
            early.push(frame)
        })
        .await?;
        self.socket = Some(socket);
        for frame in early {
            self.on_frame(frame);
        }
        self.stats
            .record(histogram, started.elapsed().as_micros() as u64);
        self.stats.add(count::CONNECTED, 1);
        Ok(())
    }

    /// Drops the connection without a close handshake, as a network failure would.
    pub fn drop_connection(&mut self) {
        if self.socket.take().is_some() {
            self.stats.add(count::CONNECTED, -1);
        }
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            self.stats.add(count::CONNECTED, -1);
            // The run is over for this customer; a failed close changes nothing measured.
            let _ = socket.close(None).await;
        }
    }

    fn socket(&mut self) -> Result<&mut Socket> {
        self.socket.as_mut().context("not connected")
    }

    /// Sends a new stamped message; returns its client message id.
    pub async fn send_message(&mut self) -> Result<String> {
        self.n_sent += 1;
        let client_message_id = format!("{}-{}", self.tag, self.n_sent);
        let stamp = wire::now_ns();
        let body = wire::customer_body(stamp);
        self.outstanding.insert(stamp);
        self.first_sent.get_or_insert_with(Instant::now);
        self.stats.add(count::CUSTOMER_SENT, 1);
        self.send_body(client_message_id.clone(), body).await?;
        Ok(client_message_id)
    }

    /// Sends (or, after a drop, resends) every message still without an ack.
    pub async fn resend_unacked(&mut self) -> Result<()> {
        let unacked: Vec<(String, String)> = self
            .pending_acks
            .iter()
            .map(|(id, (_, body))| (id.clone(), body.clone()))
            .collect();
        for (client_message_id, body) in unacked {
            self.send_body(client_message_id, body).await?;
        }
        Ok(())
    }

    async fn send_body(&mut self, client_message_id: String, body: String) -> Result<()> {
        let frame = wire::customer_message(&client_message_id, &body);
        self.pending_acks
            .insert(client_message_id, (Instant::now(), body));
        wire::send(self.socket()?, frame).await
    }

    /// Asks to end the session (`leave`).
    pub async fn leave(&mut self) -> Result<()> {
        let session = self.session.clone().context("leave without a session")?;
        wire::send(self.socket()?, wire::session_request("leave", &session)).await
    }

    /// Reads one frame and accounts for it; `None` when the server closed.
    pub async fn next(&mut self) -> Result<Option<Seen>> {
        let Some(text) = wire::next_text(self.socket()?).await? else {
            self.drop_connection();
            return Ok(None);
        };
        Ok(Some(self.on_frame(Incoming::parse(&text)?)))
    }

    /// Reads until `done` holds, failing after `timeout`.
    pub async fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Customer) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) {
            let seen = tokio::time::timeout_at(deadline, self.next())
                .await
                .with_context(|| format!("timeout: {what} within {timeout:?}"))??;
            if seen.is_none() {
                bail!("the server closed the socket while waiting for {what}");
            }
        }
        Ok(())
    }

    /// Accounts for one server frame.
    pub fn on_frame(&mut self, frame: Incoming) -> Seen {
        match frame.kind.as_str() {
            "ack" => {
                let Some(client_message_id) = frame.client_message_id else {
                    return Seen::Other;
                };
                if let Some((sent, _)) = self.pending_acks.remove(&client_message_id) {
                    self.stats
                        .record(hist::ACK, sent.elapsed().as_micros() as u64);
                    self.stats.add(count::CUSTOMER_ACKED, 1);
                    if self.session.is_none() {
                        self.stats.add(count::OPENED, 1);
                    }
                    self.session = frame.session;
                }
                return Seen::Acked;
            }
            "error" => {
                let code = frame.code.unwrap_or_else(|| "unknown".into());
                self.stats.error(format!("customer error frame: {code}"));
                return Seen::Other;
            }
            "typing" | "queue_status" => return Seen::Other,
            _ => {}
        }
        let (Some(session), Some(seq)) = (frame.session, frame.seq) else {
            return Seen::Other;
        };
        let last = self.last_seq.entry(session).or_default();
        if seq <= *last {
            self.stats.add(count::DUPLICATES, 1);
            return Seen::Other;
        }
        *last = seq;
        match frame.kind.as_str() {
            "assigned" => {
                if !self.assigned {
                    self.assigned = true;
                    self.stats.add(count::ANSWERED, 1);
                    if let Some(first) = self.first_sent {
                        let waited = first.elapsed();
                        self.stats
                            .record(hist::TIME_TO_ANSWER, waited.as_micros() as u64);
                        if waited <= self.sl_threshold {
                            self.stats.add(count::ANSWERED_IN_SL, 1);
                        }
                    }
                }
                Seen::Assigned
            }
            "message"
                if frame
                    .sender
                    .as_deref()
                    .is_some_and(|s| s.starts_with("agent:")) =>
            {
                let Some((customer_stamp, agent_stamp)) =
                    frame.body.as_deref().and_then(wire::reply_stamps)
                else {
                    return Seen::Other;
                };
                if !self.outstanding.remove(&customer_stamp) {
                    self.stats.add(count::DUPLICATES, 1);
                    return Seen::Other;
                }
                self.stats.add(count::CUSTOMER_RECEIVED, 1);
                self.stats
                    .record(hist::AGENT_TO_CUSTOMER, wire::micros_since(agent_stamp));
                self.stats
                    .record(hist::ROUND_TRIP, wire::micros_since(customer_stamp));
                Seen::Reply
            }
            "wrap_up" => Seen::WrapUp,
            "closed" | "abandoned" => {
                if frame.kind == "abandoned" {
                    self.stats.add(count::ABANDONED, 1);
                } else {
                    self.stats.add(count::CLOSED, 1);
                }
                Seen::Ended
            }
            _ => Seen::Other,
        }
    }

    /// Nothing sent is still waiting for an ack or a reply.
    pub fn settled(&self) -> bool {
        self.pending_acks.is_empty() && self.outstanding.is_empty()
    }

    /// Messages never acknowledged, and acknowledged ones never answered.
    pub fn unsettled(&self) -> (usize, usize) {
        (
            self.pending_acks.len(),
            self.outstanding
                .len()
                .saturating_sub(self.pending_acks.len()),
        )
    }
}
