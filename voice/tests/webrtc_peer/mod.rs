//! A WebRTC peer playing the browser in tests: a str0m `Rtc` on its own
//! loopback socket and task (ICE, DTLS-SRTP, G.711 — what Chromium does,
//! without Chromium), sending a 20 ms frame of one byte value every 20 ms
//! once connected, and reporting what it receives. Like a browser it offers
//! keypad tones (telephone-event/8000) and sends a digit on request
//! ([`TestBrowser::press`]) as `RTCDTMFSender` would: RFC 4733 reports of
//! one event, the last three marked as its end.

#![allow(dead_code)] // each test binary uses part of it

use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, Writer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the test browser saw.
#[derive(Debug)]
pub enum Seen {
    Connected,
    Audio(Vec<u8>),
}

/// The browser: an `Rtc` on its own loopback socket, in its own task,
/// sending a 20 ms frame of `tone` every 20 ms once connected.
pub struct TestBrowser {
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub task: tokio::task::JoinHandle<()>,
    commands: mpsc::UnboundedSender<Command>,
}

/// What the test asks of its browser.
enum Command {
    /// A keypad key (RFC 4733 event).
    Press(u8),
    /// Close the connection (`RTCPeerConnection.close`: DTLS close_notify).
    Close,
}

/// A browser's offer of audio: PCMU and/or Opus.
pub fn browser(pcmu: bool, opus: bool) -> (Rtc, Mid, str0m::change::SdpOffer, SdpPendingOffer) {
    let mut config = Rtc::builder()
        .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_pcmu(pcmu, false)
        .enable_opus(opus, false);
    config.codec_config().add_config(
        Pt::new_with_value(126),
        None,
        Codec::Tele,
        Frequency::EIGHT_KHZ,
        None,
        FormatParams::default(),
    );
    let mut rtc = config.build(Instant::now());
    let mut api = rtc.sdp_api();
    let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    (rtc, mid, offer, pending)
}

impl TestBrowser {
    pub fn start(mut rtc: Rtc, mid: Mid, socket: UdpSocket, tone: u8) -> TestBrowser {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (commands, mut asked) = mpsc::unbounded_channel::<Command>();
        let task = tokio::spawn(async move {
            let local = socket.local_addr().unwrap();
            let mut buffer = vec![0u8; 2048];
            let mut connected = false;
            let mut next_frame = tokio::time::Instant::now();
            let mut timestamp = 0u64;
            loop {
                let timeout = loop {
                    match rtc.poll_output().unwrap() {
                        Output::Timeout(at) => break tokio::time::Instant::from_std(at),
                        Output::Transmit(transmit) => {
                            let _ = socket.try_send_to(&transmit.contents, transmit.destination);
                        }
                        Output::Event(Event::Connected) => {
                            connected = true;
                            let _ = seen_tx.send(Seen::Connected);
                        }
                        Output::Event(Event::MediaData(data)) => {
                            let _ = seen_tx.send(Seen::Audio(data.data.to_vec()));
                        }
                        Output::Event(_) => {}
                    }
                };
                if !rtc.is_alive() {
                    return;
                }
                let deadline = match connected {
                    true => timeout.min(next_frame),
                    false => timeout,
                };
                tokio::select! {
                    received = socket.recv_from(&mut buffer) => {
                        let (len, source) = received.unwrap();
                        let Ok(contents) = buffer[..len].try_into() else { continue };
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp, source, destination: local, contents,
                        });
                        let _ = rtc.handle_input(input);
                    }
                    Some(command) = asked.recv(), if connected => match command {
                        Command::Press(event) => send_key(&mut rtc, mid, event, timestamp),
                        Command::Close => {
                            rtc.close().unwrap();
                            // Its goodbye goes out; then the browser is gone.
                            loop {
                                match rtc.poll_output() {
                                    Ok(Output::Transmit(transmit)) => {
                                        let _ = socket.try_send_to(&transmit.contents, transmit.destination);
                                    }
                                    Ok(Output::Event(_)) => {}
                                    Ok(Output::Timeout(_)) | Err(_) => return,
                                }
                            }
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        if connected && tokio::time::Instant::now() >= next_frame {
                            next_frame += Duration::from_millis(20);
                            let writer = rtc.writer(mid).unwrap();
                            let pt = payload_type(&writer, |codec| codec != Codec::Tele).unwrap();
                            let time = MediaTime::new(timestamp, Frequency::EIGHT_KHZ);
                            timestamp += 160;
                            writer.write(pt, Instant::now(), time, vec![tone; 160]).unwrap();
                        }
                        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                    }
                }
            }
        });
        TestBrowser {
            seen,
            task,
            commands,
        }
    }

    /// Presses a keypad key: RFC 4733 `event` (0–9 digits, 10 `*`, 11 `#`),
    /// sent once connected.
    pub fn press(&self, event: u8) {
        self.commands.send(Command::Press(event)).unwrap();
    }

    /// Closes the connection as a page's `RTCPeerConnection.close()` does.
    pub fn close(&self) {
        self.commands.send(Command::Close).unwrap();
    }

    /// The next audio payload the browser received (within 5 s).
    pub async fn next_audio(&mut self) -> Vec<u8> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.seen.recv()).await {
                Ok(Some(Seen::Audio(payload))) => return payload,
                Ok(Some(Seen::Connected)) => continue,
                other => panic!("no audio reached the browser: {other:?}"),
            }
        }
    }
}

impl TestBrowser {
    /// Takes the server's SDP `answer`, binds its socket and starts; returns
    /// the browser and its host candidate as the page would trickle it.
    pub async fn connect(
        mut rtc: Rtc,
        mid: Mid,
        pending: SdpPendingOffer,
        answer: &str,
        tone: u8,
    ) -> (TestBrowser, String) {
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap())
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let candidate = Candidate::host(socket.local_addr().unwrap(), "udp").unwrap();
        rtc.add_local_candidate(candidate.clone());
        (
            TestBrowser::start(rtc, mid, socket, tone),
            candidate.to_sdp_string(),
        )
    }
}

/// The negotiated payload type of the first codec `wanted` takes.
fn payload_type(writer: &Writer<'_>, wanted: impl Fn(Codec) -> bool) -> Option<Pt> {
    writer
        .payload_params()
        .find(|params| wanted(params.spec().codec))
        .map(|params| params.pt())
}

/// One keypad tone of 80 ms at `timestamp`: four reports of growing
/// duration, the last sent three times with the end bit (RFC 4733 §2.5.1.4).
fn send_key(rtc: &mut Rtc, mid: Mid, event: u8, timestamp: u64) {
    let writer = rtc.writer(mid).unwrap();
    let pt =
        payload_type(&writer, |codec| codec == Codec::Tele).expect("telephone-event negotiated");
    let mut reports = Vec::new();
    for (duration, end) in [
        (160u16, false),
        (320, false),
        (480, false),
        (640, true),
        (640, true),
        (640, true),
    ] {
        let flags = if end { 0x80 | 10 } else { 10 };
        let [d0, d1] = duration.to_be_bytes();
        reports.push(vec![event, flags, d0, d1]);
    }
    for (n, report) in reports.into_iter().enumerate() {
        let writer = rtc.writer(mid).unwrap();
        let time = MediaTime::new(timestamp, Frequency::EIGHT_KHZ);
        writer
            .start_of_talkspurt(n == 0)
            .write(pt, Instant::now(), time, report)
            .unwrap();
    }
}
