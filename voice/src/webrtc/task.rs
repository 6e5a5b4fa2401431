//! A browser leg's task: feeds str0m what the sockets and the clock bring,
//! does what it asks (send datagrams, report events), and moves audio
//! between the browser and the call's media task (see the module above).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use str0m::media::{Frequency, MediaData, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::metrics::LegMetrics;
use super::{BrowserEnd, BrowserEvent, BrowserLegSetup, Command, Counters};
use crate::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket};
use crate::media::{Codec, MediaFormat, RtpSocket};

/// Receive buffers: larger than any datagram either side sends.
const RECV_BUFFER: usize = 2048;

/// After the connection was up, how long ICE may stay disconnected (a
/// network change, a stall) before the leg counts as gone.
const DISCONNECTED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Most remote candidates one leg takes (each is a destination of STUN
/// checks from switchboard).
pub(super) const MAX_REMOTE_CANDIDATES: usize = 16;

/// Most polls of str0m while a closing leg drains its goodbyes.
const CLOSE_DRAIN_POLLS: usize = 64;

pub(super) struct LegTask {
    rtc: Rtc,
    browser: RtpSocket,
    /// The host candidate's address: what str0m knows as our side.
    advertised: SocketAddr,
    inner: UdpSocket,
    media_peer: SocketAddr,
    format: MediaFormat,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<BrowserEvent>,
    counters: Arc<Counters>,
    metrics: LegMetrics,
    /// The audio section, once str0m has added it.
    mid: Option<Mid>,
    /// The browser's payload type for the call's codec.
    browser_pt: Option<Pt>,
    /// The plain RTP stream to the media task.
    ssrc: u32,
    sequence: u16,
    connected: bool,
    connect_timeout: std::time::Duration,
    /// ICE went disconnected after the connection was up, at this time.
    disconnected_since: Option<tokio::time::Instant>,
    n_remote_candidates: usize,
    /// The stream toward the browser: the last inbound SSRC from the media
    /// task, and what is added to its timestamps so that a new stream (the
    /// relay giving way to a supervisor's mix, hold audio) continues the
    /// browser's one stream without a jump.
    inbound_ssrc: Option<u32>,
    timestamp_offset: u32,
    last_written: Option<(u32, tokio::time::Instant)>,
    /// One packet to the media task, reused.
    packet: Vec<u8>,
}

impl LegTask {
    pub(super) fn new(
        rtc: Rtc,
        sockets: BrowserLegSetup,
        inner: UdpSocket,
        format: MediaFormat,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<BrowserEvent>,
        counters: Arc<Counters>,
    ) -> LegTask {
        LegTask {
            rtc,
            browser: sockets.browser,
            advertised: sockets.advertised,
            inner,
            media_peer: sockets.media_peer,
            format,
            commands,
            events,
            counters,
            metrics: LegMetrics::start(),
            mid: None,
            browser_pt: None,
            ssrc: crate::media::random_u32(),
            sequence: crate::media::random_u32() as u16,
            connected: false,
            connect_timeout: sockets.connect_timeout,
            disconnected_since: None,
            n_remote_candidates: 0,
            inbound_ssrc: None,
            timestamp_offset: 0,
            last_written: None,
            packet: Vec::with_capacity(RECV_BUFFER),
        }
    }

    pub(super) async fn run(mut self) {
        let end = self.serve().await;
        self.metrics.ended(&end);
        match &end {
            BrowserEnd::Failed(reason) => info!(%reason, "browser leg failed"),
            other => debug!(end = ?other, "browser leg ended"),
        }
        self.say_goodbye();
        // The holder dropped its receiver: nobody waits for the end.
        let _ = self.events.send(BrowserEvent::Ended(end));
    }

    async fn serve(&mut self) -> BrowserEnd {
        let mut from_browser = vec![0u8; RECV_BUFFER];
        let mut from_media = vec![0u8; RECV_BUFFER];
        let connect_by = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            let timeout = match self.drain() {
                Ok(timeout) => tokio::time::Instant::from_std(timeout),
                Err(end) => return end,
            };
            if !self.rtc.is_alive() {
                return match self.connected {
                    true => BrowserEnd::Disconnected,
                    false => BrowserEnd::Failed("the connection closed before it was up".into()),
                };
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Candidate(candidate)) => {
                        if self.n_remote_candidates < MAX_REMOTE_CANDIDATES {
                            self.n_remote_candidates += 1;
                            self.rtc.add_remote_candidate(candidate);
                        } else {
                            debug!("remote candidate over the limit: ignored");
                        }
                    }
                    Some(Command::Close) | None => return BrowserEnd::Closed,
                },
                received = self.browser.socket().recv_from(&mut from_browser) => match received {
                    Ok((len, source)) => self.take_from_browser(&from_browser[..len], source),
                    Err(error) => debug!(%error, "browser socket receive failed"),
                },
                received = self.inner.recv_from(&mut from_media) => match received {
                    Ok((len, source)) if source == self.media_peer => {
                        self.forward_to_browser(&from_media[..len]);
                    }
                    Ok((_, source)) => debug!(%source, "a stranger on the browser leg's loopback socket"),
                    Err(error) => debug!(%error, "loopback receive failed"),
                },
                () = tokio::time::sleep_until(timeout) => {
                    if let Err(error) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return BrowserEnd::Failed(error.to_string());
                    }
                }
                () = sleep_until_some(self.disconnected_since.map(|since| since + DISCONNECTED_GRACE)) => {
                    return BrowserEnd::Disconnected;
                }
                () = tokio::time::sleep_until(connect_by), if !self.connected => {
                    return BrowserEnd::Failed(format!(
                        "ice and dtls did not connect within {:?}",
                        self.connect_timeout
                    ));
                }
            }
        }
    }

    /// Tells the browser the leg is over (RTCP BYE, DTLS close_notify):
    /// str0m's close, drained for a bounded number of polls.
    fn say_goodbye(&mut self) {
        if self.rtc.close().is_err() {
            return;
        }
        for _ in 0..CLOSE_DRAIN_POLLS {
            if !self.rtc.is_alive() || self.drain().is_err() {
                return;
            }
            if self
                .rtc
                .handle_input(Input::Timeout(Instant::now()))
                .is_err()
            {
                return;
            }
        }
    }

    /// Does what str0m asks until it only waits; returns when it next wants
    /// the clock.
    fn drain(&mut self) -> Result<Instant, BrowserEnd> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => return Ok(at),
                Ok(Output::Transmit(transmit)) => {
                    if let Err(error) = self
                        .browser
                        .socket()
                        .try_send_to(&transmit.contents, transmit.destination)
                    {
                        debug!(%error, destination = %transmit.destination, "send to the browser failed");
                    }
                }
                Ok(Output::Event(event)) => self.on_event(event),
                Err(error) => return Err(BrowserEnd::Failed(error.to_string())),
            }
        }
    }

    fn take_from_browser(&mut self, datagram: &[u8], source: SocketAddr) {
        let Ok(contents) = datagram.try_into() else {
            debug!(%source, len = datagram.len(), "not stun, dtls nor srtp: dropped");
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.advertised,
                contents,
            },
        );
        // STUN for this leg's credentials, or media from a checked pair:
        // anything else (a stranger who knows the port) is dropped.
        if !self.rtc.accepts(&input) {
            debug!(%source, "datagram from a stranger on the browser socket: dropped");
            return;
        }
        if let Err(error) = self.rtc.handle_input(input) {
            debug!(%source, %error, "datagram from the browser refused");
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.counters.connected.store(true, Relaxed);
                self.metrics.connected();
                // The holder dropped its receiver: it no longer cares.
                let _ = self.events.send(BrowserEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) if self.connected => {
                // It may come back (a network change): the leg waits a grace.
                self.disconnected_since
                    .get_or_insert_with(tokio::time::Instant::now);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => self.disconnected_since = None,
            Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                self.mid = Some(added.mid);
                self.browser_pt = self.rtc.writer(added.mid).and_then(|writer| {
                    writer
                        .payload_params()
                        .find(|params| codec_of(params.spec().codec) == Some(self.format.codec))
                        .map(|params| params.pt())
                });
            }
            Event::MediaData(data) => self.forward_to_media(&data),
            Event::MediaIngressStats(stats) => {
                self.counters.jitter_units.store(stats.jitter, Relaxed);
                self.metrics
                    .jitter
                    .record(f64::from(stats.jitter) / f64::from(Codec::CLOCK_RATE));
                if let Some(loss) = stats.loss {
                    let loss = loss.clamp(0.0, 1.0);
                    self.counters
                        .loss_permille
                        .store((loss * 1000.0).round() as u32, Relaxed);
                    self.metrics.loss.record(f64::from(loss));
                }
                self.note_rtt(stats.rtt);
            }
            Event::MediaEgressStats(stats) => self.note_rtt(stats.rtt),
            _ => {}
        }
    }

    fn note_rtt(&self, rtt: Option<std::time::Duration>) {
        if let Some(rtt) = rtt {
            let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
            self.counters.rtt_micros.store(micros, Relaxed);
            self.metrics.rtt.record(rtt.as_secs_f64());
        }
    }

    /// The browser's audio and keypad tones, as plain RTP to the media
    /// task: our SSRC and sequence, the browser's timestamp, the call's
    /// payload type (audio or telephone-event).
    fn forward_to_media(&mut self, data: &MediaData) {
        if data.time.frequency() != Frequency::EIGHT_KHZ {
            return;
        }
        let payload_type = match data.params.spec().codec {
            str0m::format::Codec::Tele => match self.format.telephone_event {
                Some(payload_type) => payload_type,
                None => return,
            },
            _ => self.format.payload_type,
        };
        let header = RtpHeader {
            marker: data.audio_start_of_talk_spurt,
            payload_type,
            sequence: self.sequence,
            timestamp: data.time.numer() as u32,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.packet.clear();
        self.packet.resize(HEADER_LEN, 0);
        header.write(&mut self.packet);
        self.packet.extend_from_slice(&data.data);
        match self.inner.try_send_to(&self.packet, self.media_peer) {
            Ok(_) => {
                self.counters.from_browser.fetch_add(1, Relaxed);
            }
            Err(error) => debug!(%error, "browser audio not forwarded"),
        }
    }

    /// Plain RTP from the media task (the caller, hold audio, a mix) to the
    /// browser, in the browser's payload type for the codec.
    fn forward_to_browser(&mut self, datagram: &[u8]) {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return;
        };
        if packet.header.payload_type != self.format.payload_type {
            // DTMF and comfort noise from the caller stay on the call.
            return;
        }
        let (Some(mid), Some(pt), true) = (self.mid, self.browser_pt, self.connected) else {
            self.counters.dropped_to_browser.fetch_add(1, Relaxed);
            return;
        };
        let new_stream = self.inbound_ssrc != Some(packet.header.ssrc);
        let timestamp = self.browser_timestamp(packet.header.ssrc, packet.header.timestamp);
        let time = MediaTime::new(u64::from(timestamp), Frequency::EIGHT_KHZ);
        let Some(writer) = self.rtc.writer(mid) else {
            self.counters.dropped_to_browser.fetch_add(1, Relaxed);
            return;
        };
        match writer
            .start_of_talkspurt(packet.header.marker || new_stream)
            .write(pt, Instant::now(), time, packet.payload.to_vec())
        {
            Ok(()) => {
                self.counters.to_browser.fetch_add(1, Relaxed);
            }
            Err(error) => {
                debug!(%error, "audio to the browser not written");
                self.counters.dropped_to_browser.fetch_add(1, Relaxed);
            }
        }
    }
}

impl LegTask {
    /// The timestamp toward the browser for an inbound packet: the same
    /// clock as long as the inbound stream (SSRC) is the same; a new stream
    /// continues from the last one written plus the time since.
    fn browser_timestamp(&mut self, ssrc: u32, timestamp: u32) -> u32 {
        let now = tokio::time::Instant::now();
        if self.inbound_ssrc != Some(ssrc) {
            self.inbound_ssrc = Some(ssrc);
            if let Some((last, at)) = self.last_written {
                let elapsed = now.saturating_duration_since(at);
                let samples =
                    (elapsed.as_micros() * u128::from(Codec::CLOCK_RATE) / 1_000_000) as u32;
                let next = last.wrapping_add(samples.max(160));
                self.timestamp_offset = next.wrapping_sub(timestamp);
            }
        }
        let out = timestamp.wrapping_add(self.timestamp_offset);
        self.last_written = Some((out, now));
        out
    }
}

/// Sleeps until `deadline`; never without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Our codec for str0m's, when it is one of ours.
fn codec_of(codec: str0m::format::Codec) -> Option<Codec> {
    match codec {
        str0m::format::Codec::PCMU => Some(Codec::Pcmu),
        str0m::format::Codec::PCMA => Some(Codec::Pcma),
        _ => None,
    }
}
