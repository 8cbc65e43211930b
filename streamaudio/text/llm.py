"""One LLM client over the `openai` package, for any OpenAI-compatible endpoint
(OpenAI, vLLM, Ollama, ...): structured output with a JSON Schema, validated on
return and repaired when it does not validate; retries with backoff on 429
(honouring Retry-After), 5xx and timeouts; bounded concurrency; a content
cache; request and token counts per stage.

The openai client's own retries are switched off (max_retries=0): this module
retries itself so that every HTTP attempt is counted per stage and a build can
say exactly what it cost.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jsonschema

from .cache import DiskCache, content_key


FAILURE_KEY = "__streamaudio_llm_failure__"


class LLMError(RuntimeError):
    """A request failed for good (retries and repairs used up); the message is a reject reason.

    ``transient`` is true when the model never answered (rate limits, timeouts, server or
    HTTP errors): a later build should ask again, so nothing built on it is cached. An
    answer that stayed invalid after its repairs is a verdict, not transient."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = None  # default: $OPENAI_API_KEY, or "local" for servers that ignore it
    timeout_s: float = 60.0
    max_retries: int = 5
    max_repairs: int = 2
    concurrency: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    temperature: float = 0.0
    seed: int | None = 0

    @property
    def tag(self) -> str:
        return f"llm:{self.model}"


@dataclass
class StageStats:
    requests: int = 0  # HTTP attempts
    calls: int = 0  # logical calls (one per prompt)
    cache_hits: int = 0
    retries: int = 0
    repairs: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Usage:
    stages: dict[str, StageStats] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stage(self, name: str) -> StageStats:
        with self.lock:
            return self.stages.setdefault(name, StageStats())

    def as_dict(self) -> dict:
        return {k: dict(v.__dict__) for k, v in sorted(self.stages.items())}


def _retry_after(exc) -> float | None:
    resp = getattr(exc, "response", None)
    if resp is None:
        return None
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def call_with_retries(request, stage: str, stats: StageStats, lock, cfg: LLMConfig, slots=None):
    """Run ``request()`` (one HTTP call through the openai client) with retries: 429 waits
    for Retry-After when the server sends it, 5xx/timeouts/connection errors back off
    exponentially with jitter; other 4xx fail at once. Every attempt is counted."""
    import contextlib

    import openai

    last = ""
    for attempt in range(cfg.max_retries + 1):
        with (slots or contextlib.nullcontext()):
            with lock:
                stats.requests += 1
            try:
                return request()
            except openai.RateLimitError as exc:
                wait, last = _retry_after(exc), "429 rate limited"
            except openai.InternalServerError as exc:
                wait, last = _retry_after(exc), f"{exc.status_code} server error"
            except openai.APITimeoutError:
                wait, last = None, f"timeout after {cfg.timeout_s}s"
            except openai.APIConnectionError as exc:
                wait, last = None, f"connection failed ({exc.__class__.__name__})"
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                with lock:
                    stats.failures += 1
                raise LLMError(f"{stage}: HTTP {exc.status_code}: {str(exc)[:200]}", transient=True) from None
        if attempt == cfg.max_retries:
            break
        with lock:
            stats.retries += 1
        backoff = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)
        time.sleep(min(cfg.max_backoff_s, wait) if wait is not None else backoff)
    with lock:
        stats.failures += 1
    raise LLMError(f"{stage}: gave up after {cfg.max_retries + 1} attempts: {last}", transient=True)


class LLMClient:
    def __init__(self, config: LLMConfig, cache_dir=None, usage: Usage | None = None):
        from openai import OpenAI

        self.config = config
        key = config.api_key or os.environ.get("OPENAI_API_KEY") or "local"
        self.client = OpenAI(base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s)
        self.cache = DiskCache(cache_dir, "llm") if cache_dir else None
        self.usage = usage or Usage()
        self._slots = threading.BoundedSemaphore(config.concurrency)

    # ---------------------------------------------------------------- one call
    def complete_json(self, stage: str, messages: list[dict], schema: dict, name: str = "reply") -> dict:
        """A JSON object that validates against ``schema``, or LLMError with the reason."""
        cfg = self.config
        sampling = {"temperature": cfg.temperature, "seed": cfg.seed}
        key = content_key("chat", cfg.base_url.rstrip("/"), cfg.model, messages, schema, sampling)
        stats = self.usage.stage(stage)
        with self.usage.lock:
            stats.calls += 1
        if self.cache is not None:
            hit = self.cache.get_json(key)
            if hit is not None:
                with self.usage.lock:
                    stats.cache_hits += 1
                if isinstance(hit, dict) and set(hit) == {FAILURE_KEY}:
                    with self.usage.lock:
                        stats.failures += 1
                    raise LLMError(f"{hit[FAILURE_KEY]} (cached)")
                return hit
        convo = list(messages)
        validator = jsonschema.Draft202012Validator(schema)
        problem = ""
        for attempt in range(cfg.max_repairs + 1):
            text = self._chat(stage, convo, schema, name, sampling)
            try:
                value = json.loads(text)
                errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
                if not errors:
                    if self.cache is not None:
                        self.cache.put_json(key, value)
                    return value
                problem = "; ".join(f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:3])
            except json.JSONDecodeError as exc:
                problem = f"not valid JSON ({exc.msg} at char {exc.pos})"
            if attempt < cfg.max_repairs:
                with self.usage.lock:
                    stats.repairs += 1
                convo = convo + [
                    {"role": "assistant", "content": text[:4000]},
                    {"role": "user", "content": f"That reply does not match the required JSON Schema: {problem}. "
                                                "Reply again with only a JSON object that matches it."},
                ]
        with self.usage.lock:
            stats.failures += 1
        reason = f"{stage}: reply still invalid after {cfg.max_repairs} repair(s): {problem}"
        if self.cache is not None:
            # the model answered, badly, every time: asking the same prompt again gives the same
            # answer, so a rebuild reuses the verdict. Rate limits, timeouts and 5xx are never cached.
            self.cache.put_json(key, {FAILURE_KEY: reason})
        raise LLMError(reason)

    def _chat(self, stage: str, messages, schema, name, sampling) -> str:
        cfg = self.config
        stats = self.usage.stage(stage)

        def request():
            resp = self.client.chat.completions.create(
                model=cfg.model, messages=messages,
                response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
                **{k: v for k, v in sampling.items() if v is not None},
            )
            u = getattr(resp, "usage", None)
            with self.usage.lock:
                stats.prompt_tokens += getattr(u, "prompt_tokens", 0) or 0
                stats.completion_tokens += getattr(u, "completion_tokens", 0) or 0
            return (resp.choices[0].message.content if resp.choices else None) or ""

        return call_with_retries(request, stage, stats, self.usage.lock, cfg, self._slots)

    # ---------------------------------------------------------------- many calls
    def map_json(self, stage: str, requests: list[tuple[list[dict], dict]]) -> list[dict | LLMError]:
        """Run many (messages, schema) calls with bounded concurrency; results in input order."""
        def one(req):
            try:
                return self.complete_json(stage, *req)
            except LLMError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(one, requests))
