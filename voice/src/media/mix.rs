//! Mixing for supervised calls (docs/supervisor.md, call monitoring): who
//! hears whom when a supervisor listens, whispers or barges in, and the
//! three-way G.711 mixer that makes one stream out of two.
//!
//! A destination that hears one party gets that party's packets relayed as
//! they are (the relay's byte-for-byte path, no added delay); one that hears
//! two gets their audio decoded, summed and encoded again, 20 ms at a time:
//!
//! ```text
//!  caller ──push──▶ ┌────────────┐
//!  agent  ──push──▶ │ 20 ms FIFO │ ──tick (every 20 ms)──▶ per destination: Σ heard frames → G.711
//!  supervisor ───▶  └────────────┘      (a source with nothing queued adds silence)
//! ```
//!
//! Each source keeps at most [`MAX_QUEUED_FRAMES`] frames as a burst comes,
//! and at most [`MAX_BACKLOG_FRAMES`] once a tick has taken one: a source
//! whose clock runs fast, or a burst after a network stall, loses its oldest
//! frames rather than adding delay that would last. This module is pure: the call's media
//! task feeds it and sends what it returns.

use std::collections::VecDeque;

use super::g711;
use super::rtp::{HEADER_LEN, RtpHeader};
use super::sdp::Codec;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// Most frames a source keeps queued (100 ms) when a burst comes: beyond,
/// the oldest go.
pub const MAX_QUEUED_FRAMES: usize = 5;

/// Most frames a source keeps waiting after a tick (40 ms): what a late
/// packet or a stall left queued beyond that is dropped at the next tick,
/// so the mix never stays behind.
pub const MAX_BACKLOG_FRAMES: usize = 2;

/// A party of a supervised call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The customer.
    Caller,
    /// The agent on the call.
    Agent,
    /// The supervisor following it.
    Supervisor,
}

impl Party {
    /// Every party, in [`Mixer::tick`]'s order.
    pub const ALL: [Party; 3] = [Party::Caller, Party::Agent, Party::Supervisor];

    /// The party's place in [`Party::ALL`].
    pub(crate) fn idx(self) -> usize {
        match self {
            Party::Caller => 0,
            Party::Agent => 1,
            Party::Supervisor => 2,
        }
    }
}

/// How a supervisor follows a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitoring {
    /// Silent: the supervisor hears both; nobody hears the supervisor.
    Listen,
    /// Coaching: the supervisor hears both; the agent also hears the
    /// supervisor; the caller does not.
    Whisper,
    /// Three-way: everyone hears the other two.
    Barge,
}

impl Monitoring {
    /// Whom `to` hears.
    pub fn hears(self, to: Party) -> &'static [Party] {
        use Monitoring::{Barge, Listen, Whisper};
        use Party::{Agent, Caller, Supervisor};
        match (self, to) {
            (_, Supervisor) => &[Caller, Agent],
            (Listen, Caller) | (Whisper, Caller) => &[Agent],
            (Listen, Agent) => &[Caller],
            (Whisper, Agent) | (Barge, Agent) => &[Caller, Supervisor],
            (Barge, Caller) => &[Agent, Supervisor],
        }
    }

    /// Whether `from`'s audio reaches `to` at all.
    pub fn reaches(self, from: Party, to: Party) -> bool {
        self.hears(to).contains(&from)
    }

    /// How `to` is fed. `bridged`: the caller and the agent talk (the
    /// relay's bridge); otherwise (hold, no agent yet) the caller hears
    /// hold audio, the agent nothing, and only the supervisor hears —
    /// whoever of the two sends.
    pub fn feed(self, to: Party, bridged: bool) -> Feed {
        if !bridged {
            return match to {
                Party::Supervisor => Feed::Mix,
                Party::Caller | Party::Agent => Feed::Nothing,
            };
        }
        match self.hears(to) {
            [one] => Feed::Relay(*one),
            _ => Feed::Mix,
        }
    }

    /// Whether `to` hears `from` now, relayed or in its mix.
    pub fn hears_now(self, to: Party, from: Party, bridged: bool) -> bool {
        match self.feed(to, bridged) {
            Feed::Nothing => false,
            Feed::Relay(party) => party == from,
            Feed::Mix => to != from && self.reaches(from, to),
        }
    }

    /// Whether `from`'s audio goes into anyone's mix (then it is pushed
    /// to the [`Mixer`]).
    pub fn mixes(self, from: Party, bridged: bool) -> bool {
        Party::ALL
            .into_iter()
            .any(|to| to != from && self.feed(to, bridged) == Feed::Mix && self.reaches(from, to))
    }
}

/// How one party gets its audio while a supervisor is on the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Nothing from the other parties.
    Nothing,
    /// One party's packets, relayed byte for byte.
    Relay(Party),
    /// The mix of two parties, sent on the mixer's 20 ms tick.
    Mix,
}

/// One decoded 20 ms frame.
type Frame = [i16; FRAME_SAMPLES];

/// One encoded 20 ms frame, as the mixer returns it.
pub type Encoded = [u8; FRAME_SAMPLES];

/// The three-way mixer of one supervised call; all parties speak `codec`
/// (the caller's, which the agent's and the supervisor's phones were
/// offered).
#[derive(Debug)]
pub struct Mixer {
    codec: Codec,
    queues: [VecDeque<Frame>; 3],
    /// Frames dropped because a source ran ahead, per source.
    dropped: [u64; 3],
}

impl Mixer {
    /// A mixer for `codec`.
    pub fn new(codec: Codec) -> Mixer {
        Mixer {
            codec,
            queues: Default::default(),
            dropped: [0; 3],
        }
    }

    /// Queues the payload of one RTP packet from `from` (any length: it is
    /// cut into 20 ms frames, a short tail padded with silence).
    pub fn push(&mut self, from: Party, payload: &[u8]) {
        for chunk in payload.chunks(FRAME_SAMPLES) {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (sample, code) in frame.iter_mut().zip(chunk) {
                *sample = match self.codec {
                    Codec::Pcmu => g711::ulaw_decode(*code),
                    Codec::Pcma => g711::alaw_decode(*code),
                };
            }
            let queue = &mut self.queues[from.idx()];
            if queue.len() == MAX_QUEUED_FRAMES {
                queue.pop_front();
                self.dropped[from.idx()] += 1;
            }
            queue.push_back(frame);
        }
    }

    /// One 20 ms step: takes the oldest frame of every source and returns,
    /// per destination in [`Party::ALL`] order, the encoded mix of what it
    /// hears under `monitoring` — `None` when none of the sources it hears
    /// had a frame (nothing to send). Nothing is allocated.
    pub fn tick(&mut self, monitoring: Monitoring) -> [Option<Encoded>; 3] {
        let frames: [Option<Frame>; 3] = [
            self.queues[0].pop_front(),
            self.queues[1].pop_front(),
            self.queues[2].pop_front(),
        ];
        for (queue, dropped) in self.queues.iter_mut().zip(&mut self.dropped) {
            while queue.len() > MAX_BACKLOG_FRAMES {
                queue.pop_front();
                *dropped += 1;
            }
        }
        Party::ALL.map(|to| {
            let mut heard = monitoring
                .hears(to)
                .iter()
                .filter_map(|from| frames[from.idx()].as_ref());
            let first = heard.next()?;
            let mut sum = *first;
            for frame in heard {
                add(&mut sum, frame);
            }
            Some(self.encode(&sum))
        })
    }

    /// Frames dropped so far because `from` ran ahead of the mix.
    pub fn dropped(&self, from: Party) -> u64 {
        self.dropped[from.idx()]
    }

    /// Frames dropped so far, all sources together.
    pub fn n_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    fn encode(&self, frame: &Frame) -> Encoded {
        let mut out = [0u8; FRAME_SAMPLES];
        match self.codec {
            Codec::Pcmu => g711::ulaw_encode_all(frame, &mut out),
            Codec::Pcma => g711::alaw_encode_all(frame, &mut out),
        }
        out
    }
}

/// Adds `frame` to `sum`, sample by sample, clipped to 16 bits.
fn add(sum: &mut Frame, frame: &Frame) {
    for (sample, other) in sum.iter_mut().zip(frame) {
        *sample = sample.saturating_add(*other);
    }
}

/// The RTP stream of mixed audio switchboard sends to one party: an SSRC,
/// sequence number and timestamp of its own (a relayed stream keeps its
/// sender's). The timestamp advances 20 ms per tick whether a packet goes
/// or not, and the first packet after a pause carries the marker bit, so
/// the phone's jitter buffer resynchronises there.
#[derive(Debug)]
pub struct MixStream {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// The next packet starts a talkspurt.
    marker: bool,
    packet: [u8; HEADER_LEN + FRAME_SAMPLES],
}

impl MixStream {
    /// A new stream with random SSRC, sequence and timestamp (RFC 3550 §5.1).
    pub fn new() -> MixStream {
        MixStream {
            ssrc: super::random_u32(),
            sequence: super::random_u32() as u16,
            timestamp: super::random_u32(),
            marker: true,
            packet: [0; HEADER_LEN + FRAME_SAMPLES],
        }
    }

    /// The packet for this tick's `frame`, with the call's payload type
    /// (the codec's static one, or the number the caller's SDP mapped it to).
    pub fn packet(&mut self, payload_type: u8, frame: &Encoded) -> &[u8] {
        let header = RtpHeader {
            marker: self.marker,
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        let len = header.write(&mut self.packet);
        self.packet[len..].copy_from_slice(frame);
        self.marker = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        &self.packet
    }

    /// A tick that sent this party nothing: time goes on, and the next
    /// packet starts a talkspurt.
    pub fn skip(&mut self) {
        self.marker = true;
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
    }
}

impl Default for MixStream {
    fn default() -> MixStream {
        MixStream::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(level: i16) -> Vec<u8> {
        let mut out = vec![0u8; FRAME_SAMPLES];
        g711::ulaw_encode_all(&[level; FRAME_SAMPLES], &mut out);
        out
    }

    fn level(payload: &[u8]) -> i16 {
        g711::ulaw_decode(payload[0])
    }

    #[test]
    fn who_hears_whom_in_each_mode() {
        use Monitoring::*;
        use Party::*;
        let table: Vec<(Monitoring, Party, Party, bool)> = vec![
            // Listening is silent: nobody hears the supervisor.
            (Listen, Supervisor, Caller, false),
            (Listen, Supervisor, Agent, false),
            (Listen, Caller, Supervisor, true),
            (Listen, Agent, Supervisor, true),
            // A whisper reaches the agent only.
            (Whisper, Supervisor, Agent, true),
            (Whisper, Supervisor, Caller, false),
            // Barging: everyone hears everyone.
            (Barge, Supervisor, Caller, true),
            (Barge, Supervisor, Agent, true),
            (Barge, Caller, Agent, true),
            (Barge, Agent, Caller, true),
        ];
        for (mode, from, to, expected) in table {
            assert_eq!(
                mode.reaches(from, to),
                expected,
                "{mode:?}: {from:?} → {to:?}"
            );
        }
        for mode in [Listen, Whisper, Barge] {
            for party in Party::ALL {
                assert!(
                    !mode.reaches(party, party),
                    "{mode:?}: {party:?} hears itself"
                );
            }
        }
    }

    #[test]
    fn one_party_heard_is_relayed_two_are_mixed_and_on_hold_only_the_supervisor_hears() {
        use Feed::*;
        use Monitoring::*;
        use Party::*;
        let bridged = [
            (Listen, [Relay(Agent), Relay(Caller), Mix]),
            (Whisper, [Relay(Agent), Mix, Mix]),
            (Barge, [Mix, Mix, Mix]),
        ];
        for (mode, feeds) in bridged {
            assert_eq!(Party::ALL.map(|to| mode.feed(to, true)), feeds, "{mode:?}");
        }
        for mode in [Listen, Whisper, Barge] {
            assert_eq!(
                Party::ALL.map(|to| mode.feed(to, false)),
                [Nothing, Nothing, Mix],
                "{mode:?} on hold"
            );
            assert!(!mode.mixes(Supervisor, false), "nobody hears them on hold");
            assert!(mode.mixes(Caller, false) && mode.mixes(Agent, false));
        }
        // The supervisor's audio is mixed only when someone hears it.
        assert!(!Listen.mixes(Supervisor, true));
        assert!(Whisper.mixes(Supervisor, true));
        assert!(Barge.mixes(Supervisor, true));
    }

    #[test]
    fn a_mixed_stream_numbers_its_packets_and_marks_a_talkspurt_after_a_pause() {
        let mut stream = MixStream::new();
        let frame = [0xd5; FRAME_SAMPLES];
        let first = header_of(stream.packet(8, &frame));
        let second = header_of(stream.packet(8, &frame));
        assert!(first.marker && !second.marker);
        assert_eq!(first.payload_type, 8);
        assert_eq!(second.sequence, first.sequence.wrapping_add(1));
        assert_eq!(second.timestamp, first.timestamp.wrapping_add(160));
        assert_eq!(second.ssrc, first.ssrc);
        stream.skip();
        let third = header_of(stream.packet(8, &frame));
        assert!(third.marker, "a talkspurt after the pause");
        assert_eq!(
            third.sequence,
            second.sequence.wrapping_add(1),
            "no packet lost"
        );
        assert_eq!(
            third.timestamp,
            second.timestamp.wrapping_add(320),
            "20 ms passed"
        );
        let packet = stream.packet(8, &frame);
        assert_eq!(packet.len(), HEADER_LEN + FRAME_SAMPLES);
        assert_eq!(&packet[HEADER_LEN..], &frame[..]);
    }

    fn header_of(packet: &[u8]) -> RtpHeader {
        crate::media::rtp::RtpPacket::parse(packet).unwrap().header
    }

    #[test]
    fn each_destination_gets_the_sum_of_what_it_hears() {
        let mut mixer = Mixer::new(Codec::Pcmu);
        mixer.push(Party::Caller, &tone(1000));
        mixer.push(Party::Agent, &tone(2000));
        mixer.push(Party::Supervisor, &tone(4000));
        let [caller, agent, supervisor] = mixer.tick(Monitoring::Whisper);
        // µ-law is lossy: compare within its step at these levels.
        let near = |got: i16, want: i16| (i32::from(got) - i32::from(want)).abs() <= 160;
        let caller = level(&caller.unwrap());
        let agent = level(&agent.unwrap());
        let supervisor = level(&supervisor.unwrap());
        assert!(
            near(caller, 2000),
            "the caller hears the agent only: {caller}"
        );
        assert!(
            near(agent, 5000),
            "the agent hears caller + supervisor: {agent}"
        );
        assert!(
            near(supervisor, 3000),
            "the supervisor hears both: {supervisor}"
        );
    }

    #[test]
    fn a_silent_source_adds_nothing_and_nobody_heard_means_nothing_sent() {
        let mut mixer = Mixer::new(Codec::Pcma);
        let mut alaw = vec![0u8; FRAME_SAMPLES];
        g711::alaw_encode_all(&[3000; FRAME_SAMPLES], &mut alaw);
        mixer.push(Party::Supervisor, &alaw);
        let [caller, agent, supervisor] = mixer.tick(Monitoring::Listen);
        assert_eq!(caller, None, "in listen mode nobody hears the supervisor");
        assert_eq!(agent, None);
        assert_eq!(supervisor, None, "the supervisor does not hear themself");
        mixer.push(Party::Caller, &alaw);
        let [_, agent, supervisor] = mixer.tick(Monitoring::Barge);
        let agent = g711::alaw_decode(agent.unwrap()[0]);
        assert!((i32::from(agent) - 3000).abs() <= 130, "{agent}");
        assert!(supervisor.is_some());
    }

    #[test]
    fn loud_sums_clip_and_a_source_that_runs_ahead_loses_its_oldest_frames() {
        let mut mixer = Mixer::new(Codec::Pcmu);
        mixer.push(Party::Caller, &tone(30_000));
        mixer.push(Party::Agent, &tone(30_000));
        let [_, _, supervisor] = mixer.tick(Monitoring::Listen);
        assert!(
            level(&supervisor.unwrap()) > 30_000,
            "clipped at the top, not wrapped"
        );

        // Seven frames in one packet: five kept, the two oldest dropped.
        let mut burst = Vec::new();
        for i in 0..7 {
            burst.extend(tone(100 * (i + 1)));
        }
        mixer.push(Party::Caller, &burst);
        assert_eq!(mixer.dropped(Party::Caller), 2);
        let [_, agent, _] = mixer.tick(Monitoring::Listen);
        let first = level(&agent.unwrap());
        assert!(
            (i32::from(first) - 300).abs() <= 16,
            "the third frame is the oldest kept: {first}"
        );
        // The tick leaves two waiting: the backlog does not stay.
        assert_eq!(mixer.dropped(Party::Caller), 4);
        assert_eq!(mixer.n_dropped(), 4);
        let [_, agent, _] = mixer.tick(Monitoring::Listen);
        let next = level(&agent.unwrap());
        assert!(
            (i32::from(next) - 600).abs() <= 32,
            "the sixth frame comes next: {next}"
        );
        assert!(mixer.tick(Monitoring::Listen)[1].is_some());
        assert_eq!(mixer.tick(Monitoring::Listen)[1], None, "drained");
    }
}
