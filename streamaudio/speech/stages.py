"""Source stages for speech: a text source's spoken form (rules or an LLM), its
synthesis (TTS), and the ASR check of any speech source."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from ..progress import progress_bar
from ..resources import MANIFESTS_DIR
from ..sources.base import CLIP_SCHEMA
from ..stages import BuildEnv, SourceStage, SourceState, collect_by_id, register_stage, speech_with_text

SPOKEN_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "description": "a text source becomes speech: spoken form (rules or the LLM), then TTS",
    "properties": {
        "tts": {"type": "string", "enum": ["espeak", "openai"], "description": "ignored: the build's TTS backend decides"},
        "max_items": {"type": "integer", "minimum": 1, "description": "speak at most this many rows (the rest are rejects)"},
        "max_words": {"type": "integer", "minimum": 1, "description": "longer spoken forms are rejected (default 60)"},
    },
}


def _spoken_prompt() -> dict:
    return yaml.safe_load((MANIFESTS_DIR / "prompts" / "spoken_form.yaml").read_text())


@register_stage
class SpokenForm(SourceStage):
    """Text -> what a person would say (before TTS): by the LLM when the build has one, else by rules."""
    name = "spoken_form"
    order = 10
    config_key = "spoken"
    config_schema = SPOKEN_SCHEMA
    version = "2"

    def cache_config(self, state: SourceState, env: BuildEnv) -> Any:
        from .spoken import WRITER_TAG

        writer = [env.llm.config.base_url, env.llm.config.model, _spoken_prompt()] if env.llm else WRITER_TAG
        return [self.config(state.spec), writer]

    def run(self, state: SourceState, env: BuildEnv) -> None:
        from .spoken import WRITER_TAG, SpokenFormError, check_spoken, to_spoken_form

        spec = self.config(state.spec)
        rows = state.table.to_pylist()
        limit = spec.get("max_items")
        if limit and len(rows) > limit:
            # not spoken in this build: still accounted for, as a reject with its reason
            for r in rows[limit:]:
                state.reject("tts", r["id"], f"beyond spoken.max_items={limit}")
            rows = rows[:limit]
        max_words = spec.get("max_words", 60)
        out = []
        if env.llm is None:
            for r in rows:
                try:
                    out.append(_with_spoken(r, to_spoken_form(r["text"], max_words), WRITER_TAG))
                except SpokenFormError as exc:
                    state.reject("write", r["id"], str(exc))
        else:
            from ..text.llm import LLMError

            prompt = _spoken_prompt()
            reqs = [([{"role": "system", "content": prompt["system"]},
                      {"role": "user", "content": prompt["user"].replace("{text}", r["text"])}], prompt["schema"])
                    for r in rows]
            with progress_bar(f"write {state.name} (LLM)", None, env.show_progress):
                results = env.llm.map_json("spoken_form", reqs)
            for r, res in zip(rows, results):
                if isinstance(res, LLMError):
                    state.transient += res.transient
                    state.reject("write", r["id"], str(res))
                    continue
                try:
                    out.append(_with_spoken(r, check_spoken(res["spoken"], max_words), env.llm.config.tag))
                except SpokenFormError as exc:
                    state.reject("write", r["id"], f"LLM spoken form: {exc}")
        state.table = pa.Table.from_pylist(out, CLIP_SCHEMA)
        state.report["writer"] = env.llm.config.tag if env.llm else WRITER_TAG


def _with_spoken(row: dict, spoken: str, writer: str) -> dict:
    attrs = {**json.loads(row.get("attrs") or "{}"), "source_text": row["text"]}
    return {**row, "text": spoken, "text_by": writer, "attrs": json.dumps(attrs, ensure_ascii=False, sort_keys=True)}


def _speak_batch(rows: list[dict], tts_config, cache_dir: str, max_words: int) -> list[dict]:
    """Speak some rows; the last item is {"cpu_s": ...} (this process and its forked engines)."""
    from ..parallel import cpu_seconds
    from ..text.llm import LLMError
    from .spoken import speak_row
    from .tts import make_tts

    c0 = cpu_seconds()
    tts = make_tts(tts_config)
    out = []
    for row in rows:
        try:
            out.append({"row": speak_row(row, tts, Path(cache_dir), row["text"], row["text_by"], max_words)})
        except Exception as exc:  # one utterance's failure is that row's reject, never the build's
            out.append({"reject": {"item": row["id"], "transient": bool(isinstance(exc, LLMError) and exc.transient),
                                   "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}})
    return out + [{"cpu_s": cpu_seconds() - c0}]


@register_stage
class Speak(SourceStage):
    """Spoken form -> speech, by the build's TTS backend. Engines that report word timings
    (espeak-ng) give rows words; the others leave them to the alignment stage."""
    name = "tts"
    order = 20
    config_key = "spoken"  # SpokenForm owns the key's schema
    version = "2"
    BATCH = 16

    def static_effect(self, spec, kind, provides):
        # speech with words: from the engine, or from the alignment this stage asks for
        return ("speech" if kind == "text" else kind), provides | {"words", "speaker"}

    def cache_config(self, state: SourceState, env: BuildEnv) -> Any:
        from .tts import make_tts

        tts = make_tts(env.tts_config)
        return [self.config(state.spec).get("max_words", 60), env.tts_config.backend, tts.cache_id("*")]

    def run(self, state: SourceState, env: BuildEnv) -> None:
        rows = state.table.to_pylist()
        max_words = self.config(state.spec).get("max_words", 60)
        cache = str(env.cache_dir / "tts")
        batches = [rows[i:i + self.BATCH] for i in range(0, len(rows), self.BATCH)]
        if env.use_ray:
            ray = env.ray()
            speak = ray.remote(num_cpus=1)(_speak_batch)
            refs = [speak.remote(b, env.tts_config, cache, max_words) for b in batches]
            results = (ray.get(ref) for ref in refs)  # submission order: the output order is deterministic
        else:
            results = (_speak_batch(b, env.tts_config, cache, max_words) for b in batches)
        out = []
        with progress_bar(f"speak {state.name}", len(rows), env.show_progress) as advance:
            for items in results:
                for item in items:
                    if "cpu_s" in item:
                        state.remote_cpu_s += item["cpu_s"]
                        continue
                    if "row" in item:
                        out.append(item["row"])
                    else:
                        state.transient += item["reject"]["transient"]
                        state.reject("tts", item["reject"]["item"], item["reject"]["reason"])
                    advance()
        state.table = pa.Table.from_pylist(out, CLIP_SCHEMA)
        state.kind = "speech"
        state.provides |= {"speaker"}
        state.report["tts"] = env.tts_config.backend
        if env.tts_config.has_word_timings:
            state.provides.add("words")
        else:  # speech without word timings goes through alignment
            state.hints["align_default"] = {"backend": "pocketsphinx"}


ASR_CHECK_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["max_wer"],
    "description": "decode speech with pocketsphinx and reject clips above max_wer",
    "properties": {"max_wer": {"type": "number", "minimum": 0}},
}


@register_stage
class AsrCheck(SourceStage):
    """Decode speech and reject clips whose transcript is too far from what is heard."""
    name = "asr_check"
    order = 40
    config_key = "asr_check"
    config_schema = ASR_CHECK_SCHEMA

    def cache_config(self, state: SourceState, env: BuildEnv) -> Any:
        from importlib.metadata import version

        from .asr_check import DECODER_PARAMS

        return [self.config(state.spec), version("pocketsphinx"), DECODER_PARAMS]

    def run(self, state: SourceState, env: BuildEnv) -> None:
        from .asr_check import run_asr_check

        cfg = self.config(state.spec)
        env.ray()  # decoders run as Ray Data actors
        table = state.table
        speech = speech_with_text(table)
        results: dict[str, dict] = {}
        with progress_bar(f"asr-check {state.name}", speech.num_rows, env.show_progress) as advance:
            state.remote_cpu_s += run_asr_check(speech, on_batch=collect_by_id(results, advance))
        keep = []
        for cid in table.column("id").to_pylist():
            res = results.get(cid)
            if res is not None and res["reason"]:
                state.reject(self.name, cid, res["reason"])
                keep.append(False)
            elif res is not None and res["wer"] > cfg["max_wer"]:
                state.reject(self.name, cid, f"WER {res['wer']:.2f} > max_wer {cfg['max_wer']} "
                                             f"(heard: {res['asr_text'][:80]!r})")
                keep.append(False)
            else:
                keep.append(True)
        state.table = table.filter(pa.array(keep, pa.bool_()))
        wers = [r["wer"] for r in results.values() if not r["reason"]]
        state.report["asr_check"] = {
            "decoded": len(wers), "mean_wer": round(float(np.mean(wers)), 4) if wers else None,
            "max_wer": cfg["max_wer"], "rejected": len(keep) - sum(keep)}
