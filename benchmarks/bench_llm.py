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


def rps(base_url: str, concurrency: int, n: int, latency_s: float, cache_dir: str | None) -> dict:
    from streamaudio.text.llm import LLMClient, LLMConfig

    c = LLMClient(LLMConfig(base_url=base_url, model="bench", concurrency=concurrency, timeout_s=30),
                  cache_dir=cache_dir)
    reqs = [([{"role": "user", "content": f"TEXT: question number {i} at c{concurrency} l{latency_s}"}], SCHEMA)
            for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    res = c.map_json("bench", reqs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert all(isinstance(r, dict) for r in res)
    s = c.usage.as_dict()["bench"]
    return {"concurrency": concurrency, "latency_ms": latency_s * 1000, "calls": n, "http_requests": s["requests"],
            "cache_hits": s["cache_hits"], "wall_s": round(wall, 3), "calls_per_s": round(n / wall, 1),
            # the client's own CPU per call: 1000 / this is what one core of client could sustain
            "client_cpu_ms_per_call": round(cpu / n * 1000, 2)}


class ServerProcess:
    """The dev server in its own process, so the client's cost is measured alone."""

    def __init__(self, port: int, latency_ms: float):
        self.port, self.latency_ms = port, latency_ms

    def __enter__(self):
        import socket
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "streamaudio", "devserver", "--port", str(self.port),
                                      "--latency-ms", str(self.latency_ms)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def main() -> None:
    from streamaudio.speech.espeak import Voice, synthesize

    out = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
           "note": "server in a separate process on the same 2-core machine", "llm": [], "cache": None}
    for k, latency in enumerate((0.0, 0.05)):
        with ServerProcess(18700 + k, latency * 1000) as url:
            for conc in (1, 8, 32):
                out["llm"].append(rps(url, conc, 200 if latency == 0 else 32 * conc, latency, None))
            if latency == 0:
                with tempfile.TemporaryDirectory() as d:
                    first = rps(url, 8, 200, 0.0, d)
                    again = rps(url, 8, 200, 0.0, d)
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
