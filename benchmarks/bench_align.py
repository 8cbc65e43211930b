"""Alignment accuracy and speed, and the ASR check's WER, on the fixture corpora.

- pocketsphinx word-boundary error against the ground truth the fixtures write
  (espeak-ng's own word events: starts at the event's sample, ends where the
  word's audio falls silent), median and 90th percentile over every boundary;
- pocketsphinx speed: audio seconds per CPU second in one process (per core);
- ctc speed on the CPU with a wav2vec2-base-sized, randomly initialised model at
  a few batch sizes (torch limited to one thread, so per core); on a GPU run
  `--device cuda` to get hours of audio per GPU-minute;
- ASR check WER of pocketsphinx's decoder on fixture speech.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from streamaudio.fixtures import write_all
from streamaudio.sources import get_adapter, write_manifest

REPO = Path(__file__).resolve().parents[1]


def boundary_errors(aligner, rows, truth):
    from streamaudio.align.base import AlignmentFailure
    from streamaudio.audio import load_clip

    errors, failures, audio_s, cpu_s = [], [], 0.0, 0.0
    for r in rows:
        x = load_clip(r)
        audio_s += len(x) / 16000
        c0 = time.process_time()
        try:
            al = aligner.align(x, r["text"], "en")
        except AlignmentFailure as exc:
            failures.append({"id": r["id"], "reason": str(exc)})
            cpu_s += time.process_time() - c0
            continue
        cpu_s += time.process_time() - c0
        pos = 0
        for w in truth[r["id"].split(":", 1)[1]]:
            n = len(w["text"].split())
            group = al.words[pos:pos + n]
            pos += n
            errors += [group[0].start_s - w["start_s"], group[-1].end_s - w["end_s"]]
    e = np.abs(np.array(errors))
    return {
        "clips": len(rows), "aligned": len(rows) - len(failures), "failures": failures, "boundaries": len(e),
        "median_abs_error_ms": round(float(np.median(e)) * 1000, 1),
        "p90_abs_error_ms": round(float(np.percentile(e, 90)) * 1000, 1),
        "mean_signed_error_ms": round(float(np.mean(errors)) * 1000, 1),
        "audio_s": round(audio_s, 1), "cpu_s": round(cpu_s, 2), "x_realtime_per_core": round(audio_s / cpu_s, 1),
    }


def ctc_speed(device: str, batch_sizes, seconds_per_item: float = 8.0, items: int = 32):
    import torch

    from streamaudio.align.ctc import CTCAligner
    from streamaudio.align.models import write_random_wav2vec2

    if device == "cpu":
        torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        model = write_random_wav2vec2(Path(d) / "base", "base", seed=0)
        aligner = CTCAligner(model, device=device, max_batch_s=1e9)
        rng = np.random.default_rng(0)
        audios = [(rng.standard_normal(int(seconds_per_item * 16000)) * 0.1).astype(np.float32) for _ in range(items)]
        text = " ".join(["hello world this is a test"] * 3)
        aligner.align_batch(audios[:1], [text], ["en"])  # warm-up: kernels, allocator
        for bs in batch_sizes:
            aligner.max_batch_s = bs * seconds_per_item + 1e-3
            if device == "cuda":
                torch.cuda.synchronize()
            w0, c0 = time.perf_counter(), time.process_time()
            aligner.align_batch(audios, [text] * items, ["en"] * items)
            if device == "cuda":
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            audio_s = items * seconds_per_item
            out[str(bs)] = {"audio_s": audio_s, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                            "x_realtime": round(audio_s / wall, 1),
                            "audio_hours_per_minute": round(audio_s / 3600 / (wall / 60), 3)}
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU, 1 thread"
    return {"device": name, "model": "wav2vec2-base architecture (95M parameters), random weights",
            "seconds_per_item": seconds_per_item, "by_batch_size": out}


def asr_wer(rows, params=None):
    """Corpus WER and speed of the ASR check's decoder (``params``: None = the check's beams,
    {} = pocketsphinx's defaults)."""
    from streamaudio.audio import load_clip
    from streamaudio.speech.asr_check import PocketsphinxRecognizer, normalise
    import jiwer

    asr = PocketsphinxRecognizer(params)
    refs, hyps, audio_s, cpu_s = [], [], 0.0, 0.0
    for r in rows:
        x = load_clip(r)
        audio_s += len(x) / 16000
        c0 = time.process_time()
        hyps.append(normalise(asr.transcribe(x)))
        cpu_s += time.process_time() - c0
        refs.append(normalise(r["text"]))
    return {"clips": len(rows), "corpus_wer": round(float(jiwer.wer(refs, hyps)), 3),
            "x_realtime_per_core": round(audio_s / cpu_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=REPO / "build" / "fixtures")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--device", default="cpu", help="ctc speed: cpu or cuda")
    ap.add_argument("--batch-sizes", default="1,4,16")
    ap.add_argument("--skip-ctc", action="store_true")
    args = ap.parse_args()
    if not (args.fixtures / "_truth" / "faults.json").exists():
        write_all(args.fixtures)
    args.out.mkdir(parents=True, exist_ok=True)
    m = args.out / "librispeech.parquet"
    write_manifest(get_adapter("librispeech"), args.fixtures, m)
    rows = pq.read_table(m).to_pylist()
    truth = {j["id"]: j["words"] for j in map(json.loads, (args.fixtures / "_truth" / "librispeech_words.jsonl").read_text().splitlines())}

    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner

    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "cpu_model": _cpu_model(),
              "pocketsphinx": boundary_errors(PocketsphinxAligner(), rows, truth),
              "asr_check": asr_wer(rows),
              "asr_check_default_beams": asr_wer(rows, {})}
    if not args.skip_ctc:
        report["ctc"] = ctc_speed(args.device, [int(b) for b in args.batch_sizes.split(",")])
    (args.out / "align.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
