"""ASR check: decode speech with pocketsphinx (its en-us language model ships in
the wheel) and score it against the transcript, as the paper does for its TTS
output. The build can reject clips above a WER threshold."""
from __future__ import annotations

import re
from pathlib import Path

import jiwer
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import AudioReadError, load_clip
from ..parallel import map_rows_with_actors

RESULT_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("asr_text", pa.string()),
    pa.field("wer", pa.float64()),
    pa.field("reason", pa.string()),  # "" when decoded
])

# Narrower beams than pocketsphinx's defaults: the check needs a rough transcript, not the
# best one (benchmarks/bench_align.py measures both settings: speed and WER).
DECODER_PARAMS = dict(beam=1e-20, pbeam=1e-20, wbeam=1e-15, maxhmmpf=3000)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


class PocketsphinxRecognizer:
    languages = frozenset({"en"})

    def __init__(self, params: dict | None = None) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(loglevel="FATAL", samprate=16000, **(DECODER_PARAMS if params is None else params))

    def transcribe(self, audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        d = self.decoder
        d.reinit_feat()  # no front-end state (cepstral mean, noise) carried over: order-free results
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class AsrCheckWorker:
    def __init__(self) -> None:
        self.asr = PocketsphinxRecognizer()

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for row in batch.to_pylist():
            if row["language"] not in self.asr.languages:
                out.append({"id": row["id"], "asr_text": "", "wer": float("nan"),
                            "reason": f"no recogniser for language {row['language']!r}"})
                continue
            try:
                hyp = self.asr.transcribe(load_clip(row))
            except AudioReadError as exc:
                out.append({"id": row["id"], "asr_text": "", "wer": float("nan"), "reason": str(exc)})
                continue
            out.append({"id": row["id"], "asr_text": hyp, "wer": word_error_rate(row["text"], hyp), "reason": ""})
        return pa.Table.from_pylist(out, RESULT_SCHEMA)


def run_asr_check(rows: pa.Table, on_batch=None, actors: int | None = None) -> float:
    """Decode on Ray actors; returns the CPU seconds they spent."""
    cols = rows.select(["id", "path", "offset_s", "duration_s", "sample_rate", "text", "language"])
    return map_rows_with_actors(cols, AsrCheckWorker, {}, RESULT_SCHEMA, batch_size=8, actors=actors, on_batch=on_batch)


def check_manifest(in_path: Path, out_path: Path, progress=None) -> dict:
    """`streamaudio asr-check`: OUT = IN plus asr_text, wer (NaN where not decodable) and asr_reason."""
    rows = pq.read_table(in_path)
    results = []

    def collect(t: pa.Table) -> None:
        results.append(t)
        if progress:
            progress(t.num_rows)

    run_asr_check(rows, on_batch=collect)
    by_id = {r["id"]: r for t in results for r in t.to_pylist()}
    got = [by_id[i] for i in rows.column("id").to_pylist()]
    out = rows.append_column("asr_text", pa.array([r["asr_text"] for r in got], pa.string())) \
              .append_column("wer", pa.array([r["wer"] for r in got], pa.float64())) \
              .append_column("asr_reason", pa.array([r["reason"] for r in got], pa.string()))
    pq.write_table(out, out_path)
    wers = [r["wer"] for r in got if not r["reason"]]
    return {"clips": len(got), "decoded": len(wers), "mean_wer": float(np.mean(wers)) if wers else None,
            "corpus_wer": _corpus_wer(rows, got), "out": str(out_path)}


def _corpus_wer(rows: pa.Table, got: list[dict]) -> float | None:
    refs, hyps = [], []
    for text, r in zip(rows.column("text").to_pylist(), got):
        if not r["reason"] and normalise(text):
            refs.append(normalise(text))
            hyps.append(normalise(r["asr_text"]))
    return float(jiwer.wer(refs, hyps)) if refs else None
