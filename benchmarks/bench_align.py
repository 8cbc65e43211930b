"""Alignment accuracy and speed, and the ASR check's WER, on the fixture corpora.

- pocketsphinx word-boundary error, median, 90th percentile and mean signed error over every
  boundary, aligned share, on two kinds of speech reported separately: "continuous", the
  fixture LibriSpeech stand-in (truth: espeak-ng's own word events start a word, it ends
  where its audio falls silent), and "paused", sentences spoken word by word and joined with
  0-250 ms pauses over a recording's noise floor (streamaudio/fixtures/paused_speech.py;
  truth: where each word's audio is audible);
- pocketsphinx speed: audio seconds per CPU second in one process (per core);
- ctc speed on the CPU with a wav2vec2-base-sized, randomly initialised model at
  a few batch sizes (torch limited to one thread, so per core);
- ASR check WER of pocketsphinx's decoder on fixture speech.

`--device cuda` measures only the GPU stage (needs torch with CUDA, transformers, numpy;
neither Ray nor soundfile): end to end (audio arrays in, word timings out) at several
batch sizes, the split between host preparation, copies, emissions and search, peak GPU
memory, the model forward alone, and whether the fused search kernel's paths equal the
torch reference's on the same fp32 emissions (the model's and random ones with ties).
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

REPO = Path(__file__).resolve().parents[1]


def boundary_errors(aligner, clips) -> dict:
    """Word-boundary error of ``aligner`` on ``clips``: (id, audio, transcript, truth words),
    a truth word being {"text", "start_s", "end_s"}; a truth entry of several tokens (words
    espeak-ng speaks as one, "on the") is scored as one span. CPU time of the align calls only."""
    from streamaudio.align.base import AlignmentFailure

    errors, failures, audio_s, cpu_s = [], [], 0.0, 0.0
    for cid, x, text, truth in clips:
        audio_s += len(x) / 16000
        c0 = time.process_time()
        try:
            al = aligner.align(x, text, "en")
        except AlignmentFailure as exc:
            failures.append({"id": cid, "reason": str(exc)})
            cpu_s += time.process_time() - c0
            continue
        cpu_s += time.process_time() - c0
        pos = 0
        for w in truth:
            n = len(w["text"].split())
            group = al.words[pos:pos + n]
            pos += n
            errors += [group[0].start_s - w["start_s"], group[-1].end_s - w["end_s"]]
    signed = np.array(errors)
    e = np.abs(signed)
    return {
        "clips": len(clips), "aligned": len(clips) - len(failures),
        "aligned_share": round((len(clips) - len(failures)) / max(1, len(clips)), 4),
        "failures": failures, "boundaries": len(e),
        "median_abs_error_ms": round(float(np.median(e)) * 1000, 1),
        "p90_abs_error_ms": round(float(np.percentile(e, 90)) * 1000, 1),
        "p99_abs_error_ms": round(float(np.percentile(e, 99)) * 1000, 1),
        "mean_signed_error_ms": round(float(np.mean(signed)) * 1000, 1),
        "mean_signed_start_error_ms": round(float(np.mean(signed[0::2])) * 1000, 1),
        "mean_signed_end_error_ms": round(float(np.mean(signed[1::2])) * 1000, 1),
        "audio_s": round(audio_s, 1), "cpu_s": round(cpu_s, 2), "x_realtime_per_core": round(audio_s / cpu_s, 1),
    }


def continuous_clips(rows, truth) -> list:
    """The fixture LibriSpeech stand-in: whole sentences spoken by espeak-ng, no pauses."""
    from streamaudio.audio import load_clip

    return [(r["id"], load_clip(r), r["text"], truth[r["id"].split(":", 1)[1]]) for r in rows]


def paused_clips(n: int, seed: int) -> list:
    """Sentences spoken word by word and joined with 0-250 ms pauses over a noise floor
    (streamaudio/fixtures/paused_speech.py)."""
    from streamaudio.fixtures.paused_speech import paused_clips as make

    return [(c.id, c.audio, c.text, c.words) for c in make(n, seed=seed)]


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


def ctc_gpu(batch_sizes, seconds_per_item: float = 12.0, items: int = 1024, out: Path | None = None) -> dict:
    """The GPU stage: see the module docstring. Writes the report to ``out`` after every step."""
    import torch

    from streamaudio.align import ctc_kernel
    from streamaudio.align.ctc import NEG_INF, CTCAligner, StageTimes, ctc_search
    from streamaudio.align.models import write_random_wav2vec2

    report: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                    "model": "wav2vec2-base architecture (95M parameters), random weights, bf16, SDPA attention",
                    "seconds_per_item": seconds_per_item, "items": items}

    def save():
        if out:
            out.write_text(json.dumps(report, indent=2) + "\n")

    rng = np.random.default_rng(0)
    distinct = [(rng.standard_normal(int(seconds_per_item * 16000)) * 0.1).astype(np.float32) for _ in range(8)]
    audios = [distinct[i % 8] for i in range(items)]
    # about 14 characters per second, as read speech has
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly boxes".split()
    text = " ".join(words[i % len(words)] for i in range(int(seconds_per_item * 14 / 5.5)))
    texts, langs = [text] * items, ["en"] * items
    audio_h = items * seconds_per_item / 3600
    t_start = time.perf_counter()
    model_dir = Path(tempfile.mkdtemp()) / "base"
    write_random_wav2vec2(model_dir, "base", seed=0)
    aligner = CTCAligner(model_dir, device="cuda")
    report["attention"] = aligner.attention
    report["search"] = "fused Triton kernel" if ctc_kernel.available("cuda") else "torch reference (no Triton)"
    report["by_batch_size"] = {}

    def run(key, al, bs):
        try:
            al.max_batch_s = bs * seconds_per_item + 1e-3
            al.align_batch(audios[:bs], texts[:bs], langs[:bs])  # warm-up: kernels, allocator, autotuning
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            w0 = time.perf_counter()
            res = al.align_batch(audios, texts, langs)
            torch.cuda.synchronize()
            wall = time.perf_counter() - w0
            aligned = sum(not isinstance(r, Exception) for r in res)
            al.times = StageTimes()
            n = min(items, 4 * bs)
            al.align_batch(audios[:n], texts[:n], langs[:n])
            torch.cuda.synchronize()
            split = al.times.settle()
            al.times = None
            report["by_batch_size"][key] = {
                "batch": bs, "wall_s": round(wall, 3), "x_realtime": round(items * seconds_per_item / wall, 1),
                "audio_hours_per_gpu_minute": round(audio_h / (wall / 60), 2), "aligned": aligned,
                "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2),
                "split_ms_per_audio_hour": {k: round(v / (n * seconds_per_item / 3600), 1) for k, v in split.items()},
            }
        except Exception as exc:  # noqa: BLE001 - one failing configuration (out of memory) must not lose the others
            report["by_batch_size"][key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            torch.cuda.empty_cache()
        save()

    for bs in batch_sizes:
        run(str(bs), aligner, bs)
    torch.backends.cudnn.benchmark = True  # the convolutions' algorithms autotuned per shape
    for bs in batch_sizes[-2:]:
        run(f"{bs}+cudnn_benchmark", aligner, bs)
    if time.perf_counter() - t_start < 150:
        compiled = CTCAligner(model_dir, device="cuda", compile=True)
        run(f"{batch_sizes[-2]}+cudnn_benchmark+compile", compiled, batch_sizes[-2])
        del compiled
    torch.backends.cudnn.benchmark = False
    # the model forward alone, and the search alone: kernel against the reference on the same fp32 emissions
    bs = 64
    lp, frames = aligner.emissions(audios[:bs])
    torch.cuda.synchronize()
    w0 = time.perf_counter()
    for _ in range(5):
        aligner.emissions(audios[:bs])
    torch.cuda.synchronize()
    report["forward_only_x_realtime_batch64"] = round(5 * bs * seconds_per_item / (time.perf_counter() - w0), 1)
    report["model_split_ms_batch64"] = _model_split(aligner, audios[:bs])
    save()
    item = aligner._prepare(text, "en", audios[0])
    tgt = torch.tensor([item.target] * bs, device="cuda")
    tl = torch.full((bs,), len(item.target), device="cuda")
    il = torch.tensor(frames, device="cuda")
    checks = {}
    for name, emissions in [("model_emissions", lp), ("random_with_ties", _tied_emissions(lp.shape, lp.device))]:
        timing = {}
        got = {}
        for impl in ("kernel", "reference"):
            if impl == "kernel" and not ctc_kernel.available("cuda"):
                continue
            ctc_search(emissions, tgt, aligner.blank, il, tl, impl=impl)
            torch.cuda.synchronize()
            w0 = time.perf_counter()
            states, scores, *_ = ctc_search(emissions, tgt, aligner.blank, il, tl, impl=impl)
            torch.cuda.synchronize()
            timing[impl] = round((time.perf_counter() - w0) * 1000, 2)
            got[impl] = (states.cpu(), scores.cpu())
        entry = {"batch": bs, "frames": int(lp.shape[1]), "states": 2 * len(item.target) + 1, "search_ms": timing}
        if len(got) == 2:
            (ks, kc), (rs, rc) = got["kernel"], got["reference"]
            ok = [(bool(kc[b] <= NEG_INF / 2) == bool(rc[b] <= NEG_INF / 2)) and
                  (bool(rc[b] <= NEG_INF / 2) or (torch.equal(ks[b, : frames[b]], rs[b, : frames[b]]) and kc[b] == rc[b]))
                  for b in range(bs)]
            entry["paths_identical"] = all(ok)
            entry["items_with_a_path"] = int(sum(bool(rc[b] > NEG_INF / 2) for b in range(bs)))
        checks[name] = entry
    report["search_check"] = checks
    save()
    return report


def _model_split(aligner, audios, reps: int = 5) -> dict:
    """Where the forward's time goes (ms per batch, CUDA events): the convolutional feature
    encoder, the feature projection, the transformer, the CTC head."""
    import torch

    m = aligner.model
    w2v = m.wav2vec2
    x = torch.from_numpy(np.stack(audios)).to("cuda")
    x = ((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True) + 1e-7)).to(aligner.dtype)
    names = ("feature_encoder", "feature_projection", "transformer", "ctc_head")
    total = dict.fromkeys(names, 0.0)
    with torch.inference_mode():
        for rep in range(reps + 1):
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(5)]
            ev[0].record()
            feats = w2v.feature_extractor(x).transpose(1, 2)
            ev[1].record()
            hidden, _ = w2v.feature_projection(feats)
            ev[2].record()
            enc = w2v.encoder(hidden)[0]
            ev[3].record()
            m.lm_head(enc)
            ev[4].record()
            torch.cuda.synchronize()
            if rep:  # the first is a warm-up
                for k, name in enumerate(names):
                    total[name] += ev[k].elapsed_time(ev[k + 1]) / reps
    return {"batch": len(audios), **{k: round(v, 2) for k, v in total.items()}}


def _tied_emissions(shape, device):
    import torch

    g = torch.Generator(device="cpu").manual_seed(1)
    logits = torch.randint(0, 3, shape, generator=g).float()  # few distinct values: many ties
    return torch.log_softmax(logits, dim=-1).to(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=REPO / "build" / "fixtures")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--device", default="cpu", help="ctc speed: cpu or cuda")
    ap.add_argument("--batch-sizes", default="1,4,16")
    ap.add_argument("--skip-ctc", action="store_true")
    ap.add_argument("--items", type=int, default=1024, help="cuda: items of 12 s per run")
    ap.add_argument("--paused-clips", type=int, default=200, help="cpu: clips of speech with pauses")
    ap.add_argument("--paused-seed", type=int, default=13, help="cpu: seed of the speech with pauses")
    ap.add_argument("--continuous-clips", type=int, default=0, help="cpu: first N fixture utterances (0: all)")
    ap.add_argument("--skip-asr", action="store_true", help="cpu: skip the ASR check's WER")
    args = ap.parse_args()
    if args.device == "cuda":
        args.out.mkdir(parents=True, exist_ok=True)
        sizes = [int(b) for b in (args.batch_sizes if args.batch_sizes != "1,4,16" else "32,64,128").split(",")]
        report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "cpu_model": _cpu_model(),
                  "ctc_gpu": ctc_gpu(sizes, items=args.items, out=args.out / "align-gpu.partial.json")}
        (args.out / "align-gpu.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    from streamaudio.fixtures import write_all
    from streamaudio.sources import get_adapter, write_manifest

    if not (args.fixtures / "_truth" / "faults.json").exists():
        write_all(args.fixtures)
    args.out.mkdir(parents=True, exist_ok=True)
    m = args.out / "librispeech.parquet"
    write_manifest(get_adapter("librispeech"), args.fixtures, m)
    rows = pq.read_table(m).to_pylist()
    truth = {j["id"]: j["words"] for j in map(json.loads, (args.fixtures / "_truth" / "librispeech_words.jsonl").read_text().splitlines())}

    from streamaudio.align.pocketsphinx_backend import PocketsphinxAligner

    if args.continuous_clips:
        rows = rows[: args.continuous_clips]
    aligner = PocketsphinxAligner()
    report = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "cpu_model": _cpu_model(),
              # both kinds of speech separately: the targets hold on each
              "pocketsphinx": {"continuous": boundary_errors(aligner, continuous_clips(rows, truth)),
                               "paused": boundary_errors(aligner, paused_clips(args.paused_clips, args.paused_seed))}}
    if not args.skip_asr:
        report["asr_check"] = asr_wer(rows)
        report["asr_check_default_beams"] = asr_wer(rows, {})
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
