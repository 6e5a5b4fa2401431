//! The cost of a supervisor on a call (docs/voice.md, "A supervisor on
//! the call"): one 20 ms step of the three-way mix — each party's frame
//! decoded and queued, the mix of what each destination hears summed and
//! encoded, and its RTP packet written — in each mode. No sockets: the
//! relay's own cost is `benches/relay.rs`.
//!
//! `cargo bench -p voice --bench mix`
//!
//! A call monitored in `barge` mixes for all three parties; 20 ms divided
//! by the time of one step is how many such calls one core mixes.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use voice::media::Codec;
use voice::media::g711;
use voice::media::mix::{FRAME_SAMPLES, Feed, MixStream, Mixer, Monitoring, Party};

/// One party's 20 ms of speech-like audio (a 400 Hz tone at `level`).
fn frame(level: f64) -> [u8; FRAME_SAMPLES] {
    let samples: Vec<i16> = (0..FRAME_SAMPLES)
        .map(|n| (level * (2.0 * std::f64::consts::PI * 400.0 * n as f64 / 8000.0).sin()) as i16)
        .collect();
    let mut out = [0u8; FRAME_SAMPLES];
    g711::ulaw_encode_all(&samples, &mut out);
    out
}

fn mix_step(c: &mut Criterion) {
    let frames = [frame(8000.0), frame(6000.0), frame(4000.0)];
    let mut group = c.benchmark_group("mix/step");
    for mode in [Monitoring::Listen, Monitoring::Whisper, Monitoring::Barge] {
        let mut mixer = Mixer::new(Codec::Pcmu);
        let mut streams: [MixStream; 3] = std::array::from_fn(|_| MixStream::new());
        group.bench_function(BenchmarkId::from_parameter(format!("{mode:?}")), |b| {
            b.iter(|| {
                for (i, from) in Party::ALL.into_iter().enumerate() {
                    if mode.mixes(from, true) {
                        mixer.push(from, &frames[i]);
                    }
                }
                let mixed = mixer.tick(mode);
                let mut written = 0;
                for (i, to) in Party::ALL.into_iter().enumerate() {
                    if let (Feed::Mix, Some(frame)) = (mode.feed(to, true), &mixed[i]) {
                        written += streams[i].packet(0, frame).len();
                    }
                }
                std::hint::black_box(written)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, mix_step);
criterion_main!(benches);
