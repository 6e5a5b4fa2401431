#!/usr/bin/env python3
"""Writes voice/assets/prompt.pcm, the IVR menu prompt callers hear before
they key a choice.

Raw 8 kHz mono signed 16-bit little-endian PCM: two rising two-tone chimes
(the "please choose" cue) followed by silence, exactly 3 s, 150 frames of
20 ms, so it loops cleanly while the caller decides. A deployment that wants
a spoken menu records its own prompt in the same format. Deterministic:
running it again writes the same bytes. Standard library only.

    python3 voice/assets/make_prompt_clip.py
"""

import math
import os
import struct

RATE = 8000
PEAK = 0.3
# (frequency Hz, seconds): a rising pair, a pause, the pair again, then
# silence to the end of the 3 s loop.
TONES = [(660, 0.18), (880, 0.28), (0, 0.14), (660, 0.18), (880, 0.28)]
LENGTH = 3.0
EDGE = 0.01


def tone(frequency, seconds):
    count = int(round(seconds * RATE))
    samples = []
    for index in range(count):
        time = index / RATE
        if frequency == 0:
            samples.append(0.0)
            continue
        envelope = min(1.0, time / EDGE, (seconds - time) / EDGE)
        samples.append(PEAK * envelope * math.sin(2 * math.pi * frequency * time))
    return samples


def main():
    samples = []
    for frequency, seconds in TONES:
        samples.extend(tone(frequency, seconds))
    samples.extend([0.0] * (int(LENGTH * RATE) - len(samples)))
    assert len(samples) == int(LENGTH * RATE) and len(samples) % 160 == 0
    pcm = b"".join(struct.pack("<h", int(round(sample * 32767))) for sample in samples)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompt.pcm")
    with open(path, "wb") as out:
        out.write(pcm)
    print(f"wrote {path}: {len(pcm)} bytes, {len(samples) / RATE:.1f} s")


if __name__ == "__main__":
    main()
