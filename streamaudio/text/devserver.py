"""A local OpenAI-compatible HTTP server for tests, benchmarks and offline trials.

It speaks the two endpoints the toolkit uses, over real HTTP:
- POST /v1/chat/completions with ``response_format`` json_schema: answers with a
  JSON object built from the requested schema (for the spoken-form schema, the
  user's text with markup removed);
- POST /v1/audio/speech: speech synthesized by espeak-ng, as WAV.

Faults can be queued (``server.faults.extend([...])``, consumed one per request)
or forced for every request whose text contains ``[[fault:NAME]]``:
``429`` (with Retry-After), ``500``, ``slow`` (answers after ``slow_s``),
``malformed`` (not JSON), ``schema`` (JSON that breaks the schema).

    streamaudio devserver --port 8008   # then --llm-base-url http://127.0.0.1:8008/v1
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "slow", "malformed", "schema")


def _value_for(schema: dict, text: str, name: str = ""):
    t = schema.get("type")
    if "enum" in schema:  # a stable but varied pick, so arrays of enums are not all alike
        h = int(hashlib.sha256(f"{name}|{text}".encode()).hexdigest()[:8], 16)
        return schema["enum"][h % len(schema["enum"])]
    if "const" in schema:
        return schema["const"]
    if t == "object":
        props = schema.get("properties", {})
        return {k: _value_for(v, text, f"{name}.{k}" if name else k) for k, v in props.items()}
    if t == "array":
        n = max(1, schema.get("minItems", 1))
        return [_value_for(schema.get("items", {}), text, f"{name}{i}") for i in range(n)]
    if t == "integer":
        return max(schema.get("minimum", 1), 1)
    if t == "number":
        return float(schema.get("minimum", 1.0))
    if t == "boolean":
        return True
    name = name.rsplit(".", 1)[-1].rstrip("0123456789") if t == "string" and "enum" not in schema else name
    if name == "spoken":
        # a crude "rewrite": what a model would keep when asked to speak the text
        spoken = re.sub(r"https?://\S+", "a link", text)
        spoken = re.sub(r"[`*_#>\[\]()]", "", spoken)
        return " ".join(spoken.split()) or "hello"
    words = re.findall(r"[A-Za-z']+", text)[:12]
    return f"{name.replace('_', ' ')}: {' '.join(words)}".strip() or "ok"


class _Handler(BaseHTTPRequestHandler):
    server: "DevServer"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        req = json.loads(self.rfile.read(n) or b"{}")
        srv = self.server
        with srv.lock:
            srv.counts[self.path] += 1
        text = json.dumps(req)
        fault = None
        m = re.search(r"\[\[fault:(\w+)\]\]", text)
        if m:
            fault = m.group(1)
        else:
            with srv.lock:
                if srv.faults:
                    fault = srv.faults.popleft()
        if fault == "429":
            return self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                              headers={"Retry-After": str(srv.retry_after_s)})
        if fault == "500":
            return self._send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
        if fault == "slow":
            time.sleep(srv.slow_s)
        elif srv.latency_s:
            time.sleep(srv.latency_s)  # a model's think time, for throughput benchmarks
        if self.path.endswith("/chat/completions"):
            return self._chat(req, fault)
        if self.path.endswith("/audio/speech"):
            return self._speech(req)
        return self._send(404, b'{"error": {"message": "not found"}}')

    def _chat(self, req: dict, fault: str | None):
        users = [m.get("content", "") for m in req.get("messages", []) if m.get("role") == "user"]
        users = [" ".join(p.get("text", "") for p in u if isinstance(p, dict)) if isinstance(u, list) else u for u in users]
        # a repair turn asks again about the same text: answer about the text, not the complaint
        user = next((u for u in reversed(users) if "TEXT:" in u), users[-1] if users else "")
        # the text to work on follows "TEXT:" when the prompt marks it
        body_text = user.split("TEXT:", 1)[1] if "TEXT:" in user else user
        body_text = re.sub(r"\[\[fault:\w+\]\]", "", body_text).strip()
        schema = (((req.get("response_format") or {}).get("json_schema") or {}).get("schema")) or {"type": "object"}
        if fault == "malformed":
            content = '{"spoken": "unterminated'
        elif fault == "schema":
            content = json.dumps({"unexpected": 42})
        else:
            content = json.dumps(_value_for(schema, body_text))
        with self.server.lock:
            self.server.log.append({"request": req, "content": content})
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req.get("messages", []))
        resp = {
            "id": f"chatcmpl-{self.server.counts[self.path]}", "object": "chat.completion", "created": 0,
            "model": req.get("model", "dev"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                      "total_tokens": prompt_tokens + len(content.split())},
        }
        return self._send(200, json.dumps(resp).encode())

    def _speech(self, req: dict):
        import soundfile as sf

        from ..speech.espeak import TTSError, Voice, synthesize

        voice = req.get("voice") or "en-us"
        try:
            speech = synthesize(req.get("input", ""), Voice(voice if "-" in voice or voice == "en" else "en-us"))
        except TTSError as exc:
            return self._send(400, json.dumps({"error": {"message": str(exc)}}).encode())
        buf = io.BytesIO()
        sf.write(buf, speech.samples, speech.sample_rate, format="WAV", subtype="PCM_16")
        return self._send(200, buf.getvalue(), ctype="audio/wav")


class DevServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 refuses bursts of concurrent clients

    def __init__(self, host: str = "127.0.0.1", port: int = 0, slow_s: float = 2.0, retry_after_s: float = 0.2):
        super().__init__((host, port), _Handler)
        self.faults: deque[str] = deque()
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.slow_s, self.retry_after_s = slow_s, retry_after_s
        self.latency_s = 0.0
        self.log: deque[dict] = deque(maxlen=2000)  # chat requests and the content answered, for tests
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def start(self) -> "DevServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
