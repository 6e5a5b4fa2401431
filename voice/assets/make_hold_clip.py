#!/usr/bin/env python3
"""Writes voice/assets/hold.pcm, the hold audio callers hear while queued.

Raw 8 kHz mono signed 16-bit little-endian PCM: a gentle four-bar melody
(C major, soft sine tones with a little second harmonic, attack and release
envelopes) of exactly 4 s, 200 frames of 20 ms, so it loops without a click.
Deterministic: running it again writes the same bytes. Standard library only.

    python3 voice/assets/make_hold_clip.py
"""

import math
import os
import struct

RATE = 8000
PEAK = 0.25  # of full scale: about -12 dBFS, soft on a phone
# (MIDI note, beats); 120 bpm, one beat = 0.5 s, 8 beats = 4 s.
MELODY = [(72, 1), (76, 1), (79, 1), (76, 1), (77, 1), (74, 1), (71, 1), (72, 1)]
BEAT = 0.5
ATTACK = 0.02
RELEASE = 0.12


def note_samples(midi, seconds):
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    count = int(round(seconds * RATE))
    samples = []
    for index in range(count):
        time = index / RATE
        envelope = min(1.0, time / ATTACK, (seconds - time) / RELEASE)
        # A slow decay makes it sound plucked rather than a test tone.
        envelope *= math.exp(-1.5 * time)
        tone = math.sin(2 * math.pi * frequency * time) + 0.2 * math.sin(4 * math.pi * frequency * time)
        samples.append(PEAK / 1.2 * envelope * tone)
    return samples


def main():
    samples = []
    for midi, beats in MELODY:
        samples.extend(note_samples(midi, beats * BEAT))
    assert len(samples) == 4 * RATE and len(samples) % 160 == 0
    pcm = b"".join(struct.pack("<h", int(round(sample * 32767))) for sample in samples)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold.pcm")
    with open(path, "wb") as out:
        out.write(pcm)
    print(f"wrote {path}: {len(pcm)} bytes, {len(samples) / RATE:.1f} s")


if __name__ == "__main__":
    main()
