"""LLM client and TTS throughput against the local OpenAI-compatible server.

- requests per second at concurrency 1, 8 and 32 (structured output, validated),
  with the server answering instantly and with a fixed 50 ms latency, so the
  client's own overhead and its concurrency both show;
- cache hit rate when the same calls are made again;
- espeak-ng synthesis real-time factor per core (one process).
"""
from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["spoken"],
          "properties": {"spoken": {"type": "string", "minLength": 1}}}


def rps(server, concurrency: int, n: int, latency_s: float, cache_dir: str | None) -> dict:
    from streamaudio.llm import LLMClient, LLMConfig

    server.latency_s = latency_s
    c = LLMClient(LLMConfig(base_url=server.base_url, model="bench", concurrency=concurrency, timeout_s=30),
                  cache_dir=cache_dir)
    reqs = [([{"role": "user", "content": f"TEXT: question number {i} at c{concurrency} l{latency_s}"}], SCHEMA)
            for i in range(n)]
    t0 = time.perf_counter()
    res = c.map_json("bench", reqs)
    wall = time.perf_counter() - t0
    assert all(isinstance(r, dict) for r in res)
    s = c.usage.as_dict()["bench"]
    return {"concurrency": concurrency, "latency_ms": latency_s * 1000, "calls": n, "http_requests": s["requests"],
            "cache_hits": s["cache_hits"], "wall_s": round(wall, 3), "calls_per_s": round(n / wall, 1)}


def main() -> None:
    from streamaudio.devserver import DevServer
    from streamaudio.tts import Voice, synthesize

    out = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "llm": [], "cache": None}
    with DevServer() as srv:
        for latency in (0.0, 0.05):
            for conc in (1, 8, 32):
                out["llm"].append(rps(srv, conc, 200 if latency == 0 else 64 * max(1, conc // 4), latency, None))
        with tempfile.TemporaryDirectory() as d:
            first = rps(srv, 8, 200, 0.0, d)
            again = rps(srv, 8, 200, 0.0, d)
            out["cache"] = {"first_http_requests": first["http_requests"], "rebuild_http_requests": again["http_requests"],
                            "rebuild_hit_rate": round(again["cache_hits"] / again["calls"], 3),
                            "rebuild_calls_per_s": again["calls_per_s"]}
    texts = ["The quick brown fox jumps over the lazy dog.", "Can you give me three tips for sleeping better?",
             "It sounds like a tap is still running. Did you mean to leave it on?"] * 10
    audio_s, c0 = 0.0, time.process_time()
    w0 = time.perf_counter()
    for t in texts:
        s = synthesize(t, Voice())
        audio_s += len(s.samples) / s.sample_rate
    # synthesis runs in a forked child per utterance: wall time is the honest per-core cost
    wall = time.perf_counter() - w0
    out["espeak"] = {"utterances": len(texts), "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
                     "x_realtime_per_core": round(audio_s / wall, 1)}
    (REPO / "build" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "build" / "bench" / "llm.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
