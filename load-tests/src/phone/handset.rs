//! An agent's phone: registers with digest authentication, answers every
//! INVITE at once with its SDP (200, no ringing), and answers BYE.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::sip::{self, Message};

/// What a phone tells the run.
#[derive(Debug)]
pub enum PhoneEvent {
    /// The server rang the phone for the caller `caller` (From's user),
    /// with its agent-leg RTP address; the phone answered 200.
    Answered { caller: String, media: SocketAddr },
    /// The ACK of that 200 came: the call is bridged.
    Acked { caller: String },
    /// The server hung up this phone's call (BYE, answered 200).
    HungUp { caller: String },
    /// Something the phone did not expect (a CANCEL, a 4xx …).
    Unexpected(String),
}

/// One agent's phone.
pub struct Handset {
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    pub agent: String,
    password: String,
}

impl Handset {
    pub async fn new(server: SocketAddr, agent: String, password: String) -> Result<Handset> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("failed to bind a phone's SIP socket")?;
        let local = socket.local_addr()?;
        Ok(Handset {
            socket,
            local,
            server,
            agent,
            password,
        })
    }

    fn register_request(&self, cseq: u32, authorization: Option<&str>) -> String {
        let mut text = format!(
            "REGISTER sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{agent}-{cseq};rport\r\n\
             From: <sip:{agent}@{ip}>;tag=r-{agent}\r\nTo: <sip:{agent}@{ip}>\r\n\
             Call-ID: reg-{agent}-{port}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{agent}@{local}>;expires=300\r\nExpires: 300\r\nMax-Forwards: 70\r\n",
            server = self.server,
            local = self.local,
            agent = self.agent,
            ip = self.server.ip(),
            port = self.local.port(),
        );
        if let Some(authorization) = authorization {
            text.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        sip::finish(&mut text, "");
        text
    }

    /// Sends a REGISTER and waits for its final answer, sending it again
    /// after 0.5, 1, 2 and 4 s while nothing came (timer E).
    async fn register_transaction(&self, text: &str, deadline: Instant) -> Result<Message> {
        let mut buf = [0u8; 8192];
        let mut interval = Duration::from_millis(500);
        self.socket.send_to(text.as_bytes(), self.server).await?;
        loop {
            let until = (Instant::now() + interval).min(deadline);
            match tokio::time::timeout_at(until, self.socket.recv(&mut buf)).await {
                Ok(received) => {
                    let len = received?;
                    if let Some(message) = Message::parse(&buf[..len])
                        && message.status().is_some_and(|status| status >= 200)
                    {
                        return Ok(message);
                    }
                }
                Err(_) if Instant::now() >= deadline => bail!("no answer to REGISTER in time"),
                Err(_) => {
                    self.socket.send_to(text.as_bytes(), self.server).await?;
                    interval = (interval * 2).min(Duration::from_secs(4));
                }
            }
        }
    }

    /// REGISTER → 401 → REGISTER with an MD5 digest → 200.
    pub async fn register(&self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        let challenge = self
            .register_transaction(&self.register_request(1, None), deadline)
            .await?;
        if challenge.status() != Some(401) {
            bail!("REGISTER answered {}", challenge.start_line);
        }
        let uri = format!("sip:{}", self.server);
        let authorization = challenge
            .headers("WWW-Authenticate")
            .find_map(|challenge| {
                sip::digest_authorization(
                    &self.agent,
                    &self.password,
                    "REGISTER",
                    &uri,
                    challenge,
                    "loadgen",
                )
            })
            .context("no MD5 challenge to REGISTER")?;
        let answer = self
            .register_transaction(&self.register_request(2, Some(&authorization)), deadline)
            .await?;
        if answer.status() != Some(200) {
            bail!("authenticated REGISTER answered {}", answer.start_line);
        }
        Ok(())
    }

    /// Answers the server until `stop`: every INVITE with 200 and audio to
    /// 127.0.0.1:`rtp_port`, BYE with 200; what happens goes to `events`.
    pub async fn answer(
        self,
        rtp_port: u16,
        events: mpsc::UnboundedSender<PhoneEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Call-ID → (the caller, our 200) for INVITE retransmissions.
        let mut answered: HashMap<String, (String, String)> = HashMap::new();
        let mut buf = [0u8; 8192];
        let contact = format!("Contact: <sip:{}@{}>", self.agent, self.local);
        loop {
            let (len, from) = tokio::select! {
                result = self.socket.recv_from(&mut buf) => match result {
                    Ok(received) => received,
                    Err(_) => continue,
                },
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                    continue;
                }
            };
            let Some(message) = Message::parse(&buf[..len]) else {
                continue;
            };
            let call_id = message.header("Call-ID").unwrap_or_default().to_string();
            // The run may be over and not listening; the phone goes on answering.
            let tell = |event| drop(events.send(event));
            match message.method() {
                Some("INVITE") => {
                    if let Some((_, response)) = answered.get(&call_id) {
                        let _ = self.socket.send_to(response.as_bytes(), from).await; // a retransmission
                        continue;
                    }
                    let caller = message.from_user().unwrap_or_default().to_string();
                    let Some(media) = sip::sdp_audio(&message.body) else {
                        tell(PhoneEvent::Unexpected(
                            "an INVITE without an SDP offer".into(),
                        ));
                        continue;
                    };
                    let tag = format!("p{}", answered.len() + 1);
                    let response = message.response(
                        "200 OK",
                        &tag,
                        std::slice::from_ref(&contact),
                        &sip::sdp(rtp_port, 2),
                    );
                    if self.socket.send_to(response.as_bytes(), from).await.is_ok() {
                        tell(PhoneEvent::Answered {
                            caller: caller.clone(),
                            media,
                        });
                    }
                    answered.insert(call_id, (caller, response));
                }
                Some("ACK") => {
                    if let Some((caller, _)) = answered.get(&call_id) {
                        tell(PhoneEvent::Acked {
                            caller: caller.clone(),
                        });
                    }
                }
                Some("BYE") => {
                    let response = message.response("200 OK", "p0", &[], "");
                    let _ = self.socket.send_to(response.as_bytes(), from).await; // a lost 200 is retransmitted for
                    let caller = answered
                        .get(&call_id)
                        .map(|(caller, _)| caller.clone())
                        .unwrap_or_default();
                    tell(PhoneEvent::HungUp { caller });
                }
                Some(method) => {
                    let response = message.response("200 OK", "p0", &[], "");
                    let _ = self.socket.send_to(response.as_bytes(), from).await; // best effort
                    if method != "OPTIONS" {
                        tell(PhoneEvent::Unexpected(format!(
                            "a {method} from the server"
                        )));
                    }
                }
                None => {}
            }
        }
    }
}
