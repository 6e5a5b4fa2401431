//! The call's media while a supervisor's phone is on it (docs/supervisor.md,
//! "Monitoring calls"): [`Monitoring::feed`] says, per party, whether it
//! hears nothing, one other party (relayed as it came, at once) or two (the
//! [`Mixer`]'s output, on a 20 ms tick, in a stream of its own).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::{Instant, Interval};
use tracing::debug;

use super::{CallTask, Leg, Mode, accept};
use crate::media::mix::{Feed, MixStream, Mixer, Monitoring, Party};
use crate::media::ports::RtpSocket;
use crate::media::rtp::{RtpHeader, RtpPacket};
use crate::media::stats::monitoring_code;

/// One frame of G.711 at 8 kHz.
const TICK: Duration = Duration::from_millis(20);

/// Who hears whom, and the mix, while a supervisor's leg is attached.
pub(super) struct Supervision {
    monitoring: Monitoring,
    mixer: Mixer,
    /// The mixed stream to each party, in [`Party::ALL`] order.
    streams: [MixStream; 3],
    /// The mix's clock. After a stall the missed ticks come at once
    /// (tokio's default), draining what queued meanwhile.
    tick: Interval,
    /// The mixer's dropped frames already in the call's counters.
    n_dropped_counted: u64,
}

/// The mix's next tick; never without a supervisor.
pub(super) async fn mix_due(supervision: Option<&mut Supervision>) {
    match supervision {
        Some(supervision) => {
            supervision.tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Where a leg sends: its socket and the latched (else signalled) address.
fn target(leg: Option<&Leg>) -> Option<(&RtpSocket, SocketAddr)> {
    leg.and_then(|leg| {
        leg.latch
            .destination()
            .map(|destination| (&leg.socket, destination))
    })
}

impl CallTask {
    /// A supervisor follows the call as `monitoring` says; `None`: nobody
    /// does (any more), and caller and agent are relayed as before.
    pub(super) fn set_monitoring(&mut self, monitoring: Option<Monitoring>) {
        self.stats
            .monitoring
            .store(monitoring_code(monitoring), Relaxed);
        match (monitoring, self.supervision.as_mut()) {
            (None, _) => self.supervision = None,
            (Some(monitoring), Some(supervision)) => supervision.monitoring = monitoring,
            (Some(monitoring), None) => {
                self.supervision = Some(Supervision {
                    monitoring,
                    mixer: Mixer::new(self.codec),
                    streams: std::array::from_fn(|_| MixStream::new()),
                    tick: tokio::time::interval(TICK),
                    n_dropped_counted: 0,
                });
            }
        }
    }

    /// Whether caller and agent talk (not on hold, an agent attached).
    fn bridged(&self) -> bool {
        self.mode == Mode::Bridge && self.agent.is_some()
    }

    pub(super) fn on_supervisor_packet(&mut self, len: usize, source: SocketAddr) {
        let received_at = Instant::now();
        let Some(supervisor) = self.supervisor.as_mut() else {
            return;
        };
        let (stats, metrics) = (&self.stats.from_supervisor, &self.metrics.from_supervisor);
        let Some(header) = accept(supervisor, len, source, stats, metrics) else {
            return;
        };
        if Some(header.payload_type) != self.telephone_event {
            supervisor.measure_jitter(header, received_at, self.epoch, stats, metrics);
        }
        self.route_supervised(Party::Supervisor, len, header, received_at);
    }

    /// An accepted packet from `from` while a supervisor is on the call:
    /// audio in the call's payload type is relayed as it is to each party
    /// that hears `from` alone and queued for the mix when a party hears
    /// `from` with another; anything else (DTMF, comfort noise) is relayed
    /// as it is to every party that hears `from`.
    pub(super) fn route_supervised(
        &mut self,
        from: Party,
        len: usize,
        header: RtpHeader,
        received_at: Instant,
    ) {
        let bridged = self.bridged();
        let Some(supervision) = self.supervision.as_mut() else {
            return;
        };
        let legs = [
            Some(&self.caller),
            self.agent.as_ref(),
            self.supervisor.as_ref(),
        ];
        let Some(datagram) = legs[from.idx()].map(|leg| &leg.buffer[..len]) else {
            return;
        };
        let monitoring = supervision.monitoring;
        let audio = header.payload_type == self.payload_type;
        let (mut relayed, mut failed) = (false, false);
        for to in Party::ALL {
            let relays = match audio {
                true => monitoring.feed(to, bridged) == Feed::Relay(from),
                false => monitoring.hears_now(to, from, bridged),
            };
            if to == from || !relays {
                continue;
            }
            let Some((socket, destination)) = target(legs[to.idx()]) else {
                continue;
            };
            match socket.socket().try_send_to(datagram, destination) {
                Ok(_) => relayed = true,
                Err(err) => {
                    debug!(error = %err, %destination, "rtp relay send failed");
                    failed = true;
                }
            }
        }
        let mixed = audio && monitoring.mixes(from, bridged);
        if mixed && let Ok(packet) = RtpPacket::parse(datagram) {
            supervision.mixer.push(from, packet.payload);
        }
        let (stats, metrics) = match from {
            Party::Caller => (&self.stats.from_caller, &self.metrics.from_caller),
            Party::Agent => (&self.stats.from_agent, &self.metrics.from_agent),
            Party::Supervisor => (&self.stats.from_supervisor, &self.metrics.from_supervisor),
        };
        if relayed {
            let latency = received_at.elapsed();
            self.stats.relay_latency.record(latency);
            self.metrics.relay_latency.record(latency.as_secs_f64());
            stats.relayed.fetch_add(1, Relaxed);
            metrics.relayed.increment(1);
        }
        if failed {
            stats.send_failed.fetch_add(1, Relaxed);
            metrics.send_failed.increment(1);
        }
        if !relayed && !failed {
            let (count, counter) = match mixed {
                true => (&stats.mixed, &metrics.mixed),
                false => (&stats.absorbed, &metrics.absorbed),
            };
            count.fetch_add(1, Relaxed);
            counter.increment(1);
        }
    }

    /// The 20 ms tick: each party fed a mix gets this tick's frame of it
    /// (when any party it hears sent one).
    pub(super) fn send_mix(&mut self) {
        let bridged = self.bridged();
        let Some(supervision) = self.supervision.as_mut() else {
            return;
        };
        let monitoring = supervision.monitoring;
        let frames = supervision.mixer.tick(monitoring);
        let n_dropped = supervision.mixer.n_dropped();
        if n_dropped > supervision.n_dropped_counted {
            let newly_dropped = n_dropped - supervision.n_dropped_counted;
            supervision.n_dropped_counted = n_dropped;
            self.stats
                .mix_dropped_frames
                .fetch_add(newly_dropped, Relaxed);
            self.metrics.mix_dropped_frames.increment(newly_dropped);
        }
        let legs = [
            Some(&self.caller),
            self.agent.as_ref(),
            self.supervisor.as_ref(),
        ];
        for to in Party::ALL {
            let party_idx = to.idx();
            let stream = &mut supervision.streams[party_idx];
            let (Feed::Mix, Some(frame), Some((socket, destination))) = (
                monitoring.feed(to, bridged),
                &frames[party_idx],
                target(legs[party_idx]),
            ) else {
                stream.skip();
                continue;
            };
            match socket
                .socket()
                .try_send_to(stream.packet(self.payload_type, frame), destination)
            {
                Ok(_) => {
                    self.stats.mixed_sent[party_idx].fetch_add(1, Relaxed);
                    self.metrics.mixed_sent[party_idx].increment(1);
                }
                Err(err) => {
                    debug!(error = %err, %destination, "mixed rtp send failed");
                    self.stats.mixed_send_failed[party_idx].fetch_add(1, Relaxed);
                    self.metrics.mixed_send_failed[party_idx].increment(1);
                }
            }
        }
    }
}
