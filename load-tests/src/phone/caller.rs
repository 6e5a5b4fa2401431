//! A caller on the loopback trunk: one UDP socket per call, INVITE with a
//! PCMU offer → (100) → 200 with the SDP answer → ACK; later BYE → 200.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::sip::{self, Message};

/// Why a call did not get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A final answer other than 2xx.
    Status(u16, String),
    /// No final answer to `method` in time (`provisional`: after a 1xx).
    Timeout {
        method: &'static str,
        provisional: bool,
    },
    /// The socket failed.
    Io(String),
    /// A 200 without a usable SDP answer.
    NoSdp,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(code, reason) => write!(f, "answered {code} {reason}"),
            Failure::Timeout {
                method,
                provisional: false,
            } => write!(f, "timeout: no answer to {method}"),
            Failure::Timeout {
                method,
                provisional: true,
            } => write!(f, "timeout: no final answer to {method} after a 1xx"),
            Failure::Io(err) => write!(f, "socket: {err}"),
            Failure::NoSdp => write!(f, "200 without an SDP answer"),
        }
    }
}

/// One call from the trunk.
pub struct Caller {
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    /// The caller's number (the customer's identity).
    pub number: String,
    call_id: String,
    from_tag: String,
    /// Once answered: the To with the server's tag and the Contact URI.
    dialog: Option<(String, String)>,
    /// Requests sent again for want of an answer.
    pub resent: u32,
}

/// A call the server answered.
#[derive(Debug, Clone)]
pub struct Answered {
    /// INVITE sent → 200 received.
    pub setup: Duration,
    /// The server's RTP address for this caller (its SDP answer).
    pub media: SocketAddr,
}

impl Caller {
    /// A caller with its own socket on 127.0.0.1.
    pub async fn new(server: SocketAddr, number: String, run_tag: &str) -> Result<Caller, Failure> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|err| Failure::Io(err.to_string()))?;
        let local = socket
            .local_addr()
            .map_err(|err| Failure::Io(err.to_string()))?;
        Ok(Caller {
            socket,
            local,
            server,
            call_id: format!("lg-{run_tag}-{number}"),
            from_tag: format!("c{}", local.port()),
            number,
            dialog: None,
            resent: 0,
        })
    }

    fn our_from(&self) -> String {
        format!(
            "<sip:{}@{}>;tag={}",
            self.number,
            self.local.ip(),
            self.from_tag
        )
    }

    async fn send(&self, text: &str) -> Result<(), Failure> {
        self.socket
            .send_to(text.as_bytes(), self.server)
            .await
            .map(|_| ())
            .map_err(|err| Failure::Io(err.to_string()))
    }

    /// Sends `text` and waits for its final answer (a response whose CSeq
    /// names `method`), sending it again after 0.5, 1, 2 and 4 s while
    /// nothing at all came (RFC 3261's timers A and E; counted in
    /// `resent`): a burst can overrun a socket's buffer even on loopback.
    async fn transaction(
        &mut self,
        text: &str,
        method: &'static str,
        wait: Duration,
    ) -> Result<Message, Failure> {
        let deadline = Instant::now() + wait;
        let mut interval = Duration::from_millis(500);
        let mut resend_at = Some(Instant::now() + interval);
        self.send(text).await?;
        let mut buf = [0u8; 8192];
        loop {
            let until = resend_at.map_or(deadline, |at| at.min(deadline));
            let len = match tokio::time::timeout_at(until, self.socket.recv(&mut buf)).await {
                Ok(Ok(len)) => len,
                Ok(Err(err)) => return Err(Failure::Io(err.to_string())),
                Err(_) if Instant::now() >= deadline => {
                    return Err(Failure::Timeout {
                        method,
                        provisional: resend_at.is_none(),
                    });
                }
                Err(_) => {
                    self.send(text).await?;
                    self.resent += 1;
                    interval = (interval * 2).min(Duration::from_secs(4));
                    resend_at = Some(Instant::now() + interval);
                    continue;
                }
            };
            let Some(message) = Message::parse(&buf[..len]) else {
                continue;
            };
            if message.cseq_method() != Some(method) {
                // The server sends its 200 again when our ACK went missing.
                if message.cseq_method() == Some("INVITE")
                    && message.status() == Some(200)
                    && let Ok(ack) = self.in_dialog_request("ACK", 1)
                {
                    self.send(&ack).await?;
                }
                continue;
            }
            match message.status() {
                Some(status) if status >= 200 => return Ok(message),
                // A provisional answer: the server has it.
                Some(_) => resend_at = None,
                None => {}
            }
        }
    }

    /// Places the call with audio to 127.0.0.1:`rtp_port`; returns once the
    /// server answered and the ACK is sent.
    pub async fn invite(&mut self, rtp_port: u16, wait: Duration) -> Result<Answered, Failure> {
        let body = sip::sdp(rtp_port, 1);
        let mut text = format!(
            "INVITE sip:support@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}-1;rport\r\n\
             From: {from}\r\nTo: <sip:support@{server}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:{number}@{local}>\r\nMax-Forwards: 70\r\n",
            server = self.server,
            local = self.local,
            call_id = self.call_id,
            from = self.our_from(),
            number = self.number,
        );
        sip::finish(&mut text, &body);
        let sent = Instant::now();
        let message = self.transaction(&text, "INVITE", wait).await?;
        let setup = sent.elapsed();
        let status = message.status().unwrap_or_default();
        let to = message.header("To").unwrap_or_default().to_string();
        if status >= 300 {
            // The ACK of a failed INVITE belongs to its transaction.
            let ack = format!(
                "ACK sip:support@{server} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}-1;rport\r\n\
                 From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                server = self.server,
                local = self.local,
                call_id = self.call_id,
                from = self.our_from(),
            );
            // The failure is what counts; a lost ACK only means retransmissions.
            let _ = self.send(&ack).await;
            let reason = message
                .start_line
                .splitn(3, ' ')
                .nth(2)
                .unwrap_or_default()
                .to_string();
            return Err(Failure::Status(status, reason));
        }
        let media = sip::sdp_audio(&message.body).ok_or(Failure::NoSdp)?;
        let target = message
            .header("Contact")
            .map(|contact| sip::uri_in(contact).to_string())
            .unwrap_or_else(|| format!("sip:support@{}", self.server));
        self.dialog = Some((to, target));
        let ack = self.in_dialog_request("ACK", 1)?;
        self.send(&ack).await?;
        Ok(Answered { setup, media })
    }

    /// An in-dialog request (ACK, BYE) with CSeq `cseq`.
    fn in_dialog_request(&self, method: &str, cseq: u32) -> Result<String, Failure> {
        let Some((to, target)) = &self.dialog else {
            return Err(Failure::Io("no dialog".into()));
        };
        Ok(format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}-{method};rport\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            call_id = self.call_id,
            from = self.our_from(),
        ))
    }

    /// Hangs up: BYE, and waits for its 200.
    pub async fn bye(&mut self, wait: Duration) -> Result<(), Failure> {
        let text = self.in_dialog_request("BYE", 2)?;
        let message = self.transaction(&text, "BYE", wait).await?;
        match message.status() {
            Some(200..=299) => Ok(()),
            status => Err(Failure::Status(status.unwrap_or_default(), "to BYE".into())),
        }
    }
}
