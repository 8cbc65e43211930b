"""Small, layout-exact stand-ins for the supported corpora, written offline.

Speech is spoken by espeak-ng (several voices and rates), sound events are
synthesized with numpy. Every file lands where the real corpus puts it, in the
real file format, so the adapters under test read exactly what they read in
production. Ground truth the tests need (word timings, event onsets, the
faults planted on purpose) goes under ``_truth/``, which no adapter reads.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import yaml

from .format import MANIFESTS_DIR
from .tts import Voice, synthesize

FIXTURE_SEED = 20261126
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def load_voices() -> list[Voice]:
    raw = yaml.safe_load((MANIFESTS_DIR / "voices.yaml").read_text())
    return [Voice(**v) for v in raw["espeak"]]


def _text_bank() -> dict:
    return yaml.safe_load((MANIFESTS_DIR / "fixtures" / "text.yaml").read_text())


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float32)
    return soxr.resample(x, sr_in, sr_out).astype(np.float32)


# ---------------------------------------------------------------- sound synthesis
def _env(n: int, sr: int, attack: float = 0.005, release: float = 0.02) -> np.ndarray:
    e = np.ones(n, dtype=np.float32)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a:
        e[:a] = np.linspace(0, 1, a)
    if r:
        e[n - r:] *= np.linspace(1, 0, r)
    return e


def _tone(freq: float, dur: float, sr: int, harmonics=(1.0,), decay: float | None = None) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    x = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics))
    if decay:
        x = x * np.exp(-t / decay)
    return (x * _env(len(t), sr)).astype(np.float32)


def _colored_noise(n: int, rng: np.random.Generator, slope_db_per_oct: float = -3.0) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (slope_db_per_oct / 6.02)
    x = np.fft.irfft(spec, n)
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def _bandpass_noise(n: int, sr: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def _place(dst: np.ndarray, src: np.ndarray, at: int) -> None:
    end = min(len(dst), at + len(src))
    if end > at:
        dst[at:end] += src[: end - at]


def _event_doorbell(sr, rng):
    ding = _tone(660, 0.9, sr, (1, 0.5, 0.25), decay=0.35)
    dong = _tone(524, 1.2, sr, (1, 0.5, 0.25), decay=0.45)
    x = np.zeros(int(1.6 * sr), np.float32)
    _place(x, ding, 0)
    _place(x, dong, int(0.45 * sr))
    return x


def _beeps(freq, on, off, count, sr):
    beep = _tone(freq, on, sr, (1, 0.3))
    x = np.zeros(int(count * (on + off) * sr), np.float32)
    for i in range(count):
        _place(x, beep, int(i * (on + off) * sr))
    return x[: int(((count - 1) * (on + off) + on) * sr)]


def _event_alarm_clock(sr, rng):
    return _beeps(2000 + 200 * rng.random(), 0.12, 0.1, 8, sr)


def _event_smoke_detector(sr, rng):
    # three long beeps: the T3 temporal pattern of a smoke alarm
    x = np.zeros(int(2.5 * sr), np.float32)
    for s in (0.0, 1.0, 2.0):
        _place(x, _tone(3150, 0.5, sr, (1, 0.2)), int(s * sr))
    return x


def _event_knock(sr, rng):
    x = np.zeros(int(1.4 * sr), np.float32)
    for i in range(3):
        burst = _bandpass_noise(int(0.08 * sr), sr, 80, 900, rng)
        burst *= np.exp(-np.arange(len(burst)) / (0.015 * sr)).astype(np.float32)
        _place(x, burst, int(i * 0.28 * sr))
    return x[: int(0.66 * sr)]


def _event_bark(sr, rng):
    x = np.zeros(int(1.5 * sr), np.float32)
    for i in range(int(rng.integers(2, 4))):
        n = int(0.16 * sr)
        t = np.arange(n) / sr
        f0 = 450 + 80 * rng.random()
        voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
        b = (voiced * 0.6 + 0.4 * _bandpass_noise(n, sr, 300, 3000, rng)) * np.hanning(n)
        _place(x, b.astype(np.float32), int(i * 0.4 * sr))
    end = np.max(np.nonzero(np.abs(x) > 1e-4)) + 1
    return x[:end]


def _event_water(sr, rng):
    n = int((3.0 + 2.0 * rng.random()) * sr)
    x = _bandpass_noise(n, sr, 400, 6000, rng) * 0.7
    return x * _env(n, sr, 0.05, 0.1)


def _event_phone(sr, rng):
    ring = (_tone(440, 1.0, sr) + _tone(480, 1.0, sr)) * 0.5
    x = np.zeros(int(3.0 * sr), np.float32)
    _place(x, ring, 0)
    _place(x, ring, int(2.0 * sr))
    return x


def _event_kettle(sr, rng):
    n = int(2.5 * sr)
    t = np.arange(n) / sr
    f = 1500 + 400 * t / t[-1]
    x = np.sin(2 * np.pi * np.cumsum(f) / sr) * 0.6 + 0.2 * _bandpass_noise(n, sr, 1000, 5000, rng)
    return (x * _env(n, sr, 0.3, 0.05)).astype(np.float32)


def _event_music(sr, rng):
    notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6]
    x = np.zeros(int(len(notes) * 0.5 * sr + sr), np.float32)
    for i, f in enumerate(notes):
        _place(x, _tone(f * (1 + 0.02 * rng.random()), 0.6, sr, (1, 0.4, 0.2), decay=0.3), int(i * 0.5 * sr))
    return x[: int(len(notes) * 0.5 * sr + 0.4 * sr)]


@dataclass(frozen=True)
class SoundClass:
    mid: str
    display_name: str
    synth: object


# A subset of the AudioSet ontology: (mid, display name) pairs as published.
SOUND_CLASSES = [
    SoundClass("/m/03wwcy", "Doorbell", _event_doorbell),
    SoundClass("/m/046dlr", "Alarm clock", _event_alarm_clock),
    SoundClass("/m/01y3hg", "Smoke detector, smoke alarm", _event_smoke_detector),
    SoundClass("/m/07r4wb8", "Knock", _event_knock),
    SoundClass("/m/05tny_", "Bark", _event_bark),
    SoundClass("/m/02jz0l", "Water tap, faucet", _event_water),
    SoundClass("/m/07pp8cl", "Telephone bell ringing", _event_phone),
    SoundClass("/m/02p3nc", "Whistling", _event_kettle),
    SoundClass("/m/04rlf", "Music", _event_music),
]
EXTRA_LABELS = [("/m/0bt9lr", "Dog"), ("/m/07pp_mv", "Alarm"), ("/m/09x0r", "Speech")]


# ---------------------------------------------------------------- corpora
def _ytid(rng: np.random.Generator) -> str:
    return "".join(_ALNUM[i] for i in rng.integers(0, len(_ALNUM), 11))


def write_librispeech(root: Path, rng: np.random.Generator, truth: Path) -> dict:
    bank = _text_bank()["librispeech"]
    voices = load_voices()
    subset = root / "LibriSpeech" / "dev-clean"
    speakers = [1272, 1462, 174, 2078, 251, 3081, 422, 5338]
    sr_out = 16000
    words_out = []
    speakers_txt = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for si, spk in enumerate(speakers):
        voice = voices[si % len(voices)]
        speakers_txt.append(f"{spk:<5}| {'F' if si % 2 else 'M'} | dev-clean        | 0.50 | Fixture Speaker {si}")
        for ci in range(2):
            chapter = 100000 + spk * 10 + ci
            d = subset / str(spk) / str(chapter)
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            for ui in range(3):
                utt = f"{spk}-{chapter}-{ui:04d}"
                sent = " ".join(
                    p for p in (
                        str(rng.choice(bank["subjects"])), str(rng.choice(bank["verbs"])),
                        str(rng.choice(bank["objects"])), str(rng.choice(bank["tails"])),
                    ) if p
                )
                speech = synthesize(sent.lower(), voice)
                x = _resample(speech.samples, speech.sample_rate, sr_out)
                lead, tail = 0.15 + 0.3 * rng.random(), 0.2 + 0.4 * rng.random()
                x = np.concatenate([np.zeros(int(lead * sr_out), np.float32), x, np.zeros(int(tail * sr_out), np.float32)])
                x += (rng.standard_normal(len(x)) * 1e-4).astype(np.float32)  # a recording's noise floor
                sf.write(d / f"{utt}.flac", x, sr_out, format="FLAC", subtype="PCM_16")
                lines.append(f"{utt} {sent}")
                words_out.append({
                    "id": utt,
                    "words": [{"text": w.upper().strip(".,!?"), "start_s": round(s + lead, 4), "end_s": round(e + lead, 4)} for w, s, e in speech.words],
                })
            (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "LibriSpeech" / "SPEAKERS.TXT").write_text("\n".join(speakers_txt) + "\n")
    (root / "LibriSpeech" / "LICENSE.TXT").write_text("Fixture stand-in for LibriSpeech (CC BY 4.0 in the real corpus).\n")
    with open(truth / "librispeech_words.jsonl", "w") as f:
        for row in words_out:
            f.write(json.dumps(row) + "\n")

    # Faults a real download also shows: bad files must become rejects, not crashes.
    bad = subset / "9999" / "1000001"
    bad.mkdir(parents=True, exist_ok=True)
    good = next((subset / str(speakers[0])).rglob("*.flac")).read_bytes()
    (bad / "9999-1000001-0000.flac").write_bytes(good[: len(good) // 2])  # truncated download
    (bad / "9999-1000001-0001.flac").write_bytes(b"")  # empty file
    (bad / "9999-1000001-0002.flac").write_bytes(b"fLaC" + bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))  # garbage
    (bad / "9999-1000001-0003.flac").write_bytes(good)  # fine audio, but no transcript line
    (bad / "9999-1000001-0004.flac").write_bytes(good)  # transcript line is not UTF-8
    (bad / "9999-1000001.trans.txt").write_bytes(
        b"9999-1000001-0000 A TRUNCATED FILE\n9999-1000001-0001 AN EMPTY FILE\n"
        b"9999-1000001-0002 A GARBAGE FILE\n9999-1000001-0004 CAF\xc9 AU LAIT\n"
    )
    return {
        "librispeech": {
            "good": len(words_out),
            "rejects": {
                "9999-1000001-0000": "corrupt",
                "9999-1000001-0001": "empty",
                "9999-1000001-0002": "corrupt",
                "9999-1000001-0003": "no transcript",
                "9999-1000001-0004": "not UTF-8",
            },
        }
    }


def write_audioset(root: Path, rng: np.random.Generator, truth: Path) -> dict:
    base = root / "AudioSet"
    (base / "audio" / "balanced_train").mkdir(parents=True, exist_ok=True)
    (base / "audio" / "eval").mkdir(parents=True, exist_ok=True)
    with open(base / "class_labels_indices.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        for i, (mid, name) in enumerate([(c.mid, c.display_name) for c in SOUND_CLASSES] + EXTRA_LABELS):
            w.writerow([i, mid, name])
    events = []
    rows = {"balanced_train": [], "eval": []}
    per_class = 4
    for c in SOUND_CLASSES:
        for k in range(per_class):
            split = "eval" if k == per_class - 1 else "balanced_train"
            ytid = _ytid(rng)
            start = float(rng.integers(0, 30)) * 10.0
            sr = int(rng.choice([16000, 32000, 44100, 48000]))
            n = 10 * sr
            bed = _colored_noise(n, rng, -3.0) * 10 ** (-50 / 20)
            ev = c.synth(sr, rng)
            ev = ev / (np.max(np.abs(ev)) + 1e-9) * 10 ** ((-12 - 6 * rng.random()) / 20)
            onset = round(float(1.0 + rng.random() * (9.0 - len(ev) / sr - 1.0)), 3)
            x = bed.copy()
            _place(x, ev.astype(np.float32), int(onset * sr))
            labels = [c.mid]
            if c.display_name == "Bark":
                labels.append("/m/0bt9lr")
            if c.display_name in ("Alarm clock", "Smoke detector, smoke alarm"):
                labels.append("/m/07pp_mv")
            ext = "flac" if k % 2 else "wav"
            sf.write(base / "audio" / split / f"{ytid}_{start:.3f}.{ext}", x, sr)
            rows[split].append((ytid, start, start + 10.0, ",".join(labels)))
            events.append({"id": f"{ytid}_{start:.3f}", "label": c.display_name, "onset_s": onset,
                           "offset_s": round(onset + len(ev) / sr, 3)})
    # faults: a listed segment whose audio was never downloaded, and a corrupt file
    missing, corrupt = _ytid(rng), _ytid(rng)
    rows["balanced_train"].append((missing, 10.0, 20.0, SOUND_CLASSES[0].mid))
    rows["balanced_train"].append((corrupt, 20.0, 30.0, SOUND_CLASSES[1].mid))
    (base / "audio" / "balanced_train" / f"{corrupt}_20.000.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    for split, rs in rows.items():
        with open(base / f"{split}_segments.csv", "w") as f:
            f.write(f"# Segments csv created Thu Nov 26 2026 by streamaudio fixtures\n")
            f.write(f"# num_ytids={len(rs)}, num_segs={len(rs)}, num_unique_labels={len(SOUND_CLASSES)}, num_positive_labels={len(rs)}\n")
            f.write("# YTID, start_seconds, end_seconds, positive_labels\n")
            for ytid, s, e, labs in rs:
                f.write(f'{ytid}, {s:.3f}, {e:.3f}, "{labs}"\n')
    with open(truth / "audioset_events.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    return {"audioset": {"good": len(events), "rejects": {f"{missing}_10.000": "missing", f"{corrupt}_20.000": "corrupt"}}}


def write_musan(root: Path, rng: np.random.Generator, truth: Path) -> dict:
    sr = 16000
    kinds = [("pink", -3.0), ("brown", -6.0), ("white", 0.0)]
    names = []
    for sub, count in (("free-sound", 6), ("sound-bible", 3)):
        d = root / "musan" / "noise" / sub
        d.mkdir(parents=True, exist_ok=True)
        ann = []
        for i in range(count):
            name, slope = kinds[(i + (sub == "sound-bible")) % len(kinds)]
            n = int((8 + 6 * rng.random()) * sr)
            x = _colored_noise(n, rng, slope) * 10 ** (-20 / 20)
            if i % 3 == 1:  # mains hum, like a fridge or fan
                t = np.arange(n) / sr
                x += (0.02 * np.sin(2 * np.pi * 50 * t) + 0.01 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
            fname = f"noise-{sub}-{i:04d}"
            sf.write(d / f"{fname}.wav", x.astype(np.float32), sr, subtype="PCM_16")
            ann.append(f"{fname} {name} noise")
            names.append(fname)
        (d / "ANNOTATIONS").write_text("\n".join(ann) + "\n")
        (d / "LICENSE").write_text("Fixture stand-in for MUSAN noise (CC BY 4.0 / public domain in the real corpus).\n")
    return {"musan": {"good": len(names), "rejects": {}}}


def write_ultrachat(root: Path, rng: np.random.Generator, truth: Path) -> dict:
    pairs = _text_bank()["ultrachat"]
    d = root / "ultrachat"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(pairs):
        pid = hashlib.sha256(p["user"].encode()).hexdigest()
        lines.append(json.dumps({
            "prompt": p["user"], "prompt_id": pid,
            "messages": [{"role": "user", "content": p["user"]}, {"role": "assistant", "content": p["assistant"]}],
        }))
    # faults: a line that is not JSON, a conversation with no assistant reply, an empty question
    lines.insert(3, '{"prompt": "broken line", "messages": [')
    lines.insert(7, json.dumps({"prompt": "no reply", "prompt_id": "noreply", "messages": [{"role": "user", "content": "Hello?"}]}))
    lines.insert(11, json.dumps({"prompt": "", "prompt_id": "empty", "messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "Hi."}]}))
    (d / "train_sft.jsonl").write_text("\n".join(lines) + "\n")
    return {"ultrachat": {"good": len(pairs), "rejects": {"train_sft.jsonl:4": "not JSON", "noreply": "no assistant", "empty": "empty"}}}


def write_all(root: str | Path, seed: int = FIXTURE_SEED) -> dict:
    """Write every stand-in corpus under ``root``; return the planted-fault summary."""
    root = Path(root)
    truth = root / "_truth"
    truth.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    for i, writer in enumerate((write_librispeech, write_audioset, write_musan, write_ultrachat)):
        summary.update(writer(root, np.random.default_rng([seed, i]), truth))
    (truth / "faults.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
