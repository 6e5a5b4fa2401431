//! A simulated customer on `/ws/customer`: one connection and what it has
//! seen, the frames it sends, and what it counts and times.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
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
    /// After losing a node: when, and what we were waiting on then (client
    /// message ids without an ack, stamps without a reply).
    recovering: Option<Recovering>,
    /// Messages refused with a code that says "nothing was stored; resend"
    /// (`unavailable`, `store_unavailable`), and when to resend them.
    refused: Vec<String>,
    resend_at: Option<tokio::time::Instant>,
    /// Resend what is refused as unavailable (a run that kills a node,
    /// where actors move between nodes); otherwise such a refusal is an
    /// error, as a store outage should be.
    pub retry_unavailable: bool,
}

/// Error codes after which a message is resent (PROTOCOL.md §9: nothing
/// was stored; resend with the same `client_message_id`).
pub const RESEND_CODES: [&str; 2] = ["unavailable", "store_unavailable"];

/// How long a client waits before resending what was refused as unavailable.
pub const RESEND_AFTER: Duration = Duration::from_millis(200);

/// What a customer who lost their node waits on before it counts as recovered.
struct Recovering {
    lost_at: Instant,
    acks: HashSet<String>,
    replies: HashSet<u64>,
}

/// How long a customer or agent who lost their node keeps trying the others.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

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
            recovering: None,
            refused: Vec::new(),
            resend_at: None,
            retry_unavailable: false,
        }
    }

    /// Connects and says `hello` (with `last_seq` after a drop); times it as
    /// `histogram`.
    pub async fn connect(&mut self, histogram: &'static str) -> Result<()> {
        let started = Instant::now();
        let socket = wire::connect(&self.endpoint, self.source, &self.path()).await?;
        self.say_hello(socket).await?;
        self.stats
            .record(histogram, started.elapsed().as_micros() as u64);
        Ok(())
    }

    fn path(&self) -> String {
        format!("/ws/customer?token={}&channel=web", self.token)
    }

    /// The socket is gone (its node was killed): connects to another of
    /// `nodes` (spread by `spread`), resumes with `last_seq` and resends
    /// every message without an ack, as PROTOCOL.md §3 asks of a client.
    /// What was outstanding at the loss is timed until it has all come.
    pub async fn fail_over(&mut self, nodes: &[SocketAddr], spread: usize) -> Result<()> {
        self.drop_connection();
        let lost_at = Instant::now();
        self.recovering = Some(Recovering {
            lost_at,
            acks: self.pending_acks.keys().cloned().collect(),
            replies: self.outstanding.clone(),
        });
        // The reconnect resends everything without an ack.
        self.refused.clear();
        self.resend_at = None;
        let order = wire::failover_order(nodes, self.endpoint.addr, spread);
        let deadline = tokio::time::Instant::now() + FAILOVER_TIMEOUT;
        loop {
            let (socket, addr) =
                wire::connect_any(&order, self.source, &self.path(), FAILOVER_TIMEOUT)
                    .await
                    .with_context(|| {
                        format!("customer {} after losing {}", self.tag, self.endpoint.addr)
                    })?;
            self.endpoint.addr = addr;
            // A hello refused (its customer's actor moving between nodes)
            // is said again on a new socket.
            match self.say_hello(socket).await {
                Ok(()) => break,
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
                Err(_) => tokio::time::sleep(RESEND_AFTER).await,
            }
        }
        self.stats.record(
            hist::FAILOVER_RECONNECT,
            lost_at.elapsed().as_micros() as u64,
        );
        self.stats.add(count::RECONNECTED, 1);
        self.resend_unacked().await?;
        self.check_recovered();
        Ok(())
    }

    /// Timed once nothing that was outstanding at the loss is missing.
    fn check_recovered(&mut self) {
        if let Some(recovering) = &self.recovering {
            let acks_in = recovering
                .acks
                .iter()
                .all(|id| !self.pending_acks.contains_key(id));
            let replies_in = recovering
                .replies
                .iter()
                .all(|stamp| !self.outstanding.contains(stamp));
            if acks_in && replies_in {
                self.stats.record(
                    hist::FAILOVER_RECOVERY,
                    recovering.lost_at.elapsed().as_micros() as u64,
                );
                self.recovering = None;
            }
        }
    }

    /// Connected now (the socket has not failed or closed).
    pub fn connected(&self) -> bool {
        self.socket.is_some()
    }

    async fn say_hello(&mut self, mut socket: Socket) -> Result<()> {
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

    /// Sends a message; it waits for its ack (and is resent after a drop)
    /// whether or not the send succeeds. A failed send drops the connection.
    async fn send_body(&mut self, client_message_id: String, body: String) -> Result<()> {
        let frame = wire::customer_message(&client_message_id, &body);
        // A resend keeps the first send's time: the ack is timed from it.
        self.pending_acks
            .entry(client_message_id)
            .or_insert((Instant::now(), body));
        let sent = wire::send(self.socket()?, frame).await;
        if sent.is_err() {
            self.drop_connection();
        }
        sent
    }

    /// Resends the messages refused as unavailable that still have no ack.
    /// Cancel-safe: an id leaves the list only once its resend went out.
    async fn resend_refused(&mut self) -> Result<()> {
        while let Some(client_message_id) = self.refused.first().cloned() {
            if let Some((_, body)) = self.pending_acks.get(&client_message_id) {
                let body = body.clone();
                self.send_body(client_message_id, body).await?;
                self.stats.add(count::RESENT_AFTER_UNAVAILABLE, 1);
            }
            self.refused.remove(0);
        }
        self.resend_at = None;
        Ok(())
    }

    /// Asks to end the session (`leave`).
    pub async fn leave(&mut self) -> Result<()> {
        let session = self.session.clone().context("leave without a session")?;
        wire::send(self.socket()?, wire::session_request("leave", &session)).await
    }

    /// Reads one frame and accounts for it; `None` when the server closed.
    /// A failed socket is dropped (and its error answered). Messages
    /// refused as unavailable are resent meanwhile, when their time comes.
    pub async fn next(&mut self) -> Result<Option<Seen>> {
        let read = match self.resend_at {
            Some(at) => {
                let socket = self.socket()?;
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => None,
                    text = wire::next_text(socket) => Some(text),
                }
            }
            None => Some(wire::next_text(self.socket()?).await),
        };
        let Some(read) = read else {
            self.resend_refused().await?;
            return Ok(Some(Seen::Other));
        };
        let text = match read {
            Ok(Some(text)) => text,
            Ok(None) => {
                self.drop_connection();
                return Ok(None);
            }
            Err(err) => {
                self.drop_connection();
                return Err(err);
            }
        };
        let seen = self.on_frame(Incoming::parse(&text)?);
        if self.recovering.is_some() && matches!(seen, Seen::Acked | Seen::Reply) {
            self.check_recovered();
        }
        Ok(Some(seen))
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
                match frame.client_message_id {
                    Some(id) if self.retry_unavailable && RESEND_CODES.contains(&code.as_str()) => {
                        // Acked meanwhile (a copy sent after a reconnect): nothing to do.
                        if self.pending_acks.contains_key(&id) && !self.refused.contains(&id) {
                            self.refused.push(id);
                            self.resend_at
                                .get_or_insert_with(|| tokio::time::Instant::now() + RESEND_AFTER);
                        }
                    }
                    _ => self.stats.error(format!("customer error frame: {code}")),
                }
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
