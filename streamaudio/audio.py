"""Reading clip audio: shared by every stage that needs samples (alignment,
ASR checks, rendering). Reads only the frames asked for; returns 16 kHz mono."""
from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

from .format import SAMPLE_RATE


INT16_SCALE = np.float32(1.0 / 32768)  # libsndfile's int16 -> float scale (a power of two: exact)


class AudioReadError(ValueError):
    """A clip cannot be read as planned; the message is a reject reason."""


def downmix(x: np.ndarray) -> np.ndarray:
    """Frames x channels -> mono, the channels' mean. Summed column by column: numpy's mean
    over a 2-wide axis is ~30x slower than this (a 5 s stereo 44.1 kHz track: 3.4 ms vs 0.1 ms)."""
    if x.shape[1] == 1:
        return x[:, 0]
    y = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        y += x[:, c]
    y *= np.float32(1.0 / x.shape[1])
    return y


def load_clip(clip: dict, start_s: float = 0.0, dur_s: float | None = None) -> np.ndarray:
    """The clip's audio from ``start_s`` (after the row's offset_s) as 16 kHz mono float32: its
    ``channel`` when the row names one, else every channel mixed down."""
    sr = int(clip["sample_rate"])
    first = int(round((clip["offset_s"] + start_s) * sr))
    avail = clip["duration_s"] - start_s
    if dur_s is None:
        dur_s = avail
    if dur_s <= 0 or dur_s > avail + 1e-3:
        raise AudioReadError(f"{clip['id']}: asked for {start_s:.3f}+{dur_s:.3f}s but the clip has {clip['duration_s']:.3f}s")
    frames = int(round(dur_s * sr))
    try:
        with sf.SoundFile(clip["path"]) as f:
            file_sr, pcm16 = f.samplerate, f.subtype == "PCM_16"
            if file_sr == sr:
                if first:  # clamped as sf.read(start=...) clamps it: past the end reads nothing
                    f.seek(min(first, f.frames))
                # 16-bit files are read as int16 and scaled here: the same float32 values as
                # libsndfile's own conversion (x / 32768 is exact), ~5% less CPU per decode
                x = f.read(frames, dtype="int16" if pcm16 else "float32", always_2d=True)
    except Exception as exc:
        raise AudioReadError(f"{clip['id']}: cannot read {clip['path']}: {' '.join(str(exc).split())[:120]}") from None
    if file_sr != sr:
        raise AudioReadError(f"{clip['id']}: manifest says {sr} Hz but the file is {file_sr} Hz")
    if len(x) < frames - 1:
        raise AudioReadError(f"{clip['id']}: file ends {(frames - len(x)) / sr:.3f}s early")
    ch = int(clip.get("channel", -1) if clip.get("channel") is not None else -1)
    if ch >= x.shape[1]:
        raise AudioReadError(f"{clip['id']}: channel {ch} asked for, the file has {x.shape[1]}")
    if ch >= 0 or x.shape[1] == 1:
        x = x[:, max(ch, 0)]
    if pcm16:  # only the channel kept is converted
        x = x.astype(np.float32)
        x *= INT16_SCALE
    if x.ndim == 2:
        x = downmix(x)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)
