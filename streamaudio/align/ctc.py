"""CTC forced alignment for wav2vec2-family checkpoints (Wav2Vec2ForCTC, MMS, ...)
loaded from a local folder. Emissions are computed in batches on the GPU when
there is one; the Viterbi search over the CTC topology is written in torch, so
it runs on CUDA and CPU alike. Needs the `align` extra (torch, transformers).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import energy
from .base import AlignedWord, Alignment, AlignmentFailure, normalise_word, precheck

NEG_INF = -1e30


def ctc_topology(targets, target_lengths, blank: int):
    """The CTC states of each item: (ext [B, S] token id per state, can_skip [B, S], n_states [B]).

    States are blank, t1, blank, t2, ..., blank (2L+1); a state may repeat, advance by one,
    or skip the blank between two different tokens."""
    import torch

    B, L = targets.shape
    S = 2 * L + 1
    ext = torch.full((B, S), blank, dtype=torch.long, device=targets.device)
    ext[:, 1::2] = targets
    n_states = 2 * target_lengths + 1
    valid = torch.arange(S, device=targets.device)[None, :] < n_states[:, None]
    ext = ext.masked_fill(~valid, blank)
    can_skip = torch.zeros((B, S), dtype=torch.bool, device=targets.device)
    can_skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ext, can_skip & valid, n_states


def viterbi_states_reference(log_probs, ext, can_skip, input_lengths, n_states):
    """The search in plain torch, one frame per step (the CPU path and the kernel's reference):
    ([B, T] best state per frame, [B] path scores), as ctc_kernel.viterbi_states."""
    import torch

    B, T, _ = log_probs.shape
    S = ext.shape[1]
    dev = log_probs.device
    valid_state = torch.arange(S, device=dev)[None, :] < n_states[:, None]
    emit = torch.gather(log_probs.float(), 2, ext[:, None, :].expand(B, T, S))  # [B, T, S]
    emit = emit.masked_fill(~valid_state[:, None, :], NEG_INF)
    alpha = torch.full((B, S), NEG_INF, dtype=torch.float32, device=dev)
    alpha[:, 0] = emit[:, 0, 0]
    if S > 1:
        alpha[:, 1] = emit[:, 0, 1]
    back = torch.zeros((B, T, S), dtype=torch.int8, device=dev)
    neg = torch.full((B, 1), NEG_INF, dtype=torch.float32, device=dev)
    neg2 = torch.full((B, 2), NEG_INF, dtype=torch.float32, device=dev)
    for t in range(1, T):
        stay = alpha
        step = torch.cat([neg, alpha[:, :-1]], dim=1)
        skip = torch.cat([neg2, alpha[:, :-2]], dim=1).masked_fill(~can_skip, NEG_INF)
        cand = torch.stack([stay, step, skip], dim=2)  # [B, S, 3]
        best, arg = cand.max(dim=2)  # a tie goes to the first: stay, then step, then skip
        new = best + emit[:, t]
        active = (t < input_lengths)[:, None]
        alpha = torch.where(active, new, alpha)
        back[:, t] = torch.where(active, arg.to(torch.int8), torch.zeros_like(arg, dtype=torch.int8))
    alpha, back = alpha.cpu().numpy(), back.cpu().numpy()
    states = np.zeros((B, T), dtype=np.int32)
    scores = np.empty(B, dtype=np.float32)
    for b in range(B):
        last, il = int(n_states[b]) - 1, int(input_lengths[b])
        a_last = alpha[b, last]
        a_prev = alpha[b, last - 1] if last > 0 else np.float32(NEG_INF * 4)
        s = last - 1 if a_prev > a_last else last
        scores[b] = max(a_last, a_prev)
        for t in range(il - 1, -1, -1):
            states[b, t] = s
            s -= int(back[b, t, s])
    return torch.from_numpy(states), torch.from_numpy(scores)


def spans_from_states(states: np.ndarray, n_frames: int, n_tokens: int):
    """(token index, first frame, last frame + 1) of each target token on a best path
    (its odd states: a path visits each once, in one run of frames)."""
    st = np.asarray(states[:n_frames])
    starts = np.flatnonzero(np.diff(st, prepend=-1))
    ends = np.append(starts[1:], n_frames)
    tok = st[starts] % 2 == 1
    spans = [(int(s) // 2, int(f0), int(f1)) for s, f0, f1 in zip(st[starts][tok], starts[tok], ends[tok])]
    assert len(spans) == n_tokens, (len(spans), n_tokens)  # a CTC path emits every token
    return spans


def ctc_viterbi(log_probs, targets, blank: int, input_lengths=None, target_lengths=None, impl: str = "auto"):
    """Best CTC path for each item of a batch.

    log_probs: [B, T, C] (or [T, C]) log-softmax emissions; targets: [B, L] (or [L])
    token ids, padded with anything past target_lengths. Returns, per item, a list of
    (token index in the target, first frame, last frame + 1), or None when no path
    exists (the audio has fewer frames than the target needs).

    ``impl``: "kernel" (the fused Triton kernel, ctc_kernel.py), "reference" (torch, frame
    by frame) or "auto" (the kernel where it can run: a CUDA device with Triton)."""
    states, scores, input_lengths, target_lengths = ctc_search(log_probs, targets, blank, input_lengths,
                                                              target_lengths, impl)
    single = log_probs.dim() == 2
    states, scores = states.cpu().numpy(), scores.cpu().numpy()
    out = [None if scores[b] <= NEG_INF / 2 else spans_from_states(states[b], int(input_lengths[b]), int(target_lengths[b]))
           for b in range(len(scores))]
    return out[0] if single else out


def ctc_search(log_probs, targets, blank: int, input_lengths=None, target_lengths=None, impl: str = "auto"):
    """The search on the device: ([B, T] states, [B] scores, input_lengths, target_lengths)."""
    import torch

    from . import ctc_kernel

    if log_probs.dim() == 2:
        log_probs, targets = log_probs[None], targets[None]
    B, T, _ = log_probs.shape
    dev = log_probs.device
    if input_lengths is None:
        input_lengths = torch.full((B,), T, dtype=torch.long, device=dev)
    if target_lengths is None:
        target_lengths = torch.full((B,), targets.shape[1], dtype=torch.long, device=dev)
    input_lengths, target_lengths = input_lengths.to(dev), target_lengths.to(dev)
    ext, can_skip, n_states = ctc_topology(targets.to(dev), target_lengths, blank)
    if impl == "auto":
        impl = "kernel" if ctc_kernel.available(dev) else "reference"
    if impl == "kernel":
        if not ctc_kernel.available(dev):
            raise RuntimeError(f"the fused CTC kernel cannot run on {dev}: it needs Triton and a CUDA device "
                               "(or TRITON_INTERPRET=1 with CPU tensors)")
        states, scores = ctc_kernel.viterbi_states(log_probs, ext, can_skip, input_lengths, n_states)
    else:
        states, scores = viterbi_states_reference(log_probs, ext, can_skip, input_lengths, n_states)
    return states, scores, input_lengths, target_lengths


@dataclass
class _Item:
    tokens: list[str]
    keep: list[int]  # transcript token index of each spelled word
    target: list[int]
    word_of_target: list[int]  # for each target position: index into keep, or -1 for a delimiter


class StageTimes:
    """Where the time of align_batch goes: host preparation, host-to-device copies, the
    model (emissions), the search, device-to-host copies and host post-processing. Device
    stages are timed with CUDA events (their own time on the GPU, which overlaps with host
    work in the pipeline), host stages with the wall clock."""

    def __init__(self):
        self.ms = {"host_prepare": 0.0, "to_device": 0.0, "emissions": 0.0, "search": 0.0, "to_host": 0.0,
                   "host_finish": 0.0}
        self._events = []

    def add_events(self, marks):
        self._events.append(marks)

    def settle(self):
        for marks in self._events:
            for (name, a), (_, b) in zip(marks, marks[1:]):
                self.ms[name] += a.elapsed_time(b)
        self._events = []
        return {k: round(v, 1) for k, v in self.ms.items()}


class CTCAligner:
    """Aligns with a local Wav2Vec2ForCTC folder (config, weights, vocab.json).

    On a GPU the model runs in bf16 with SDPA attention, items are batched by length, the
    search is the fused kernel (ctc_kernel.py), and the pipeline overlaps the host with the
    device: the next batch is padded into pinned memory by a worker thread while the device
    works, and a batch's results are turned into words on the host while the device runs
    the next one. On the CPU: fp32, the torch search, no threads."""

    languages = None  # the vocabulary decides: words it cannot spell are a reject

    def __init__(self, model_dir: str | Path, device: str | None = None, max_batch_s: float = 200.0,
                 dtype: str | None = None, attention: str = "sdpa", compile: bool = False):
        try:
            import torch
            from transformers import Wav2Vec2ForCTC
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the ctc backend needs the align extra: pip install 'streamaudio[align]'") from exc
        self.torch = torch
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file() or not (model_dir / "vocab.json").is_file():
            raise FileNotFoundError(f"{model_dir}: expected a Wav2Vec2ForCTC folder with config.json and vocab.json")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = str(self.device).startswith("cuda")
        dtype = dtype or ("bf16" if self.cuda else "fp32")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        kw = {"local_files_only": True, "torch_dtype": self.dtype}
        try:
            model = Wav2Vec2ForCTC.from_pretrained(str(model_dir), attn_implementation=attention, **kw)
        except (ValueError, ImportError):  # an older transformers without SDPA for wav2vec2
            model = Wav2Vec2ForCTC.from_pretrained(str(model_dir), **kw)
        self.model = model.to(self.device).eval()
        if compile:  # fuses the feature encoder's norms and the transformer's pointwise work; compiles per shape
            self.model = torch.compile(self.model)
        self.attention = getattr(self.model.config, "_attn_implementation", "eager")
        vocab = json.loads((model_dir / "vocab.json").read_text())
        if vocab and isinstance(next(iter(vocab.values())), dict):  # MMS: {language: vocab}
            vocab = next(iter(vocab.values()))
        self.vocab: dict[str, int] = vocab
        self.blank = vocab.get("<pad>", self.model.config.pad_token_id or 0)
        self.delim = vocab.get("|")
        self.lower = sum(k.islower() for k in vocab) >= sum(k.isupper() for k in vocab)
        cfg = json.loads((model_dir / "config.json").read_text())
        # the name keys the align cache: "+energy" since word edges are checked against the audio
        self.name = f"ctc/{cfg.get('_name_or_path') or model_dir.name}+energy"
        self.max_batch_s = max_batch_s
        self.do_normalize = True
        pre = model_dir / "preprocessor_config.json"
        if pre.is_file():
            self.do_normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
        self.times: StageTimes | None = None  # set to a StageTimes to profile align_batch

    def _prepare(self, transcript: str, language: str, audio: np.ndarray) -> _Item:
        toks = precheck(audio, transcript, language, self.languages)
        keep, target, word_of = [], [], []
        for i, tok in enumerate(toks):
            w = normalise_word(tok)
            w = w if self.lower else w.upper()
            ids = [self.vocab[c] for c in w if c in self.vocab]
            if not w:
                continue  # punctuation-only tokens are not spoken
            if not ids:
                raise AlignmentFailure(f"the model's vocabulary cannot spell {tok!r}")
            if keep and self.delim is not None:
                target.append(self.delim)
                word_of.append(-1)
            keep.append(i)
            target.extend(ids)
            word_of.extend([len(keep) - 1] * len(ids))
        if not keep:
            raise AlignmentFailure("transcript has no speakable words")
        return _Item(toks, keep, target, word_of)

    def _host_batch(self, audios: list[np.ndarray], items: list[_Item]):
        """A batch as host tensors (pinned on a GPU, so copies to the device run asynchronously):
        the raw audio, zero-padded; lengths; padded targets; the word of each target position
        (-1: a delimiter); frame counts. Normalising and masking happen on the device."""
        torch = self.torch
        lengths = [len(a) for a in audios]
        n = max(lengths)
        x = torch.empty((len(audios), n), dtype=torch.float32, pin_memory=self.cuda)
        xn = x.numpy()
        for i, a in enumerate(audios):
            xn[i, : len(a)] = a
            xn[i, len(a):] = 0.0
        L = max(len(it.target) for it in items)
        tgt = np.zeros((len(items), L), dtype=np.int64)
        word_of = np.full((len(items), L), -1, dtype=np.int64)
        for i, it in enumerate(items):
            tgt[i, : len(it.target)] = it.target
            word_of[i, : len(it.target)] = it.word_of_target
        frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).to(torch.long)
        rest = [torch.tensor(lengths), torch.from_numpy(tgt), torch.tensor([len(it.target) for it in items]),
                frames, torch.from_numpy(word_of)]
        return [x] + ([t.pin_memory() for t in rest] if self.cuda else rest)

    def _log_probs(self, x, lengths, padded: bool = True):
        """Emissions for a padded batch on the device: each item normalised over its own samples
        (as the feature extractor does), the attention mask only when some item is padded
        (``padded``, known on the host: asking the device would wait for it)."""
        torch = self.torch
        n = x.shape[1]
        valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
        if self.do_normalize:
            cnt = lengths[:, None].to(torch.float32)
            mean = x.sum(1, keepdim=True) / cnt
            var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / cnt
            x = torch.where(valid, (x - mean) / torch.sqrt(var + 1e-7), 0.0)
        kw = {}
        if self.model.config.feat_extract_norm == "layer" and padded:
            kw["attention_mask"] = valid.to(torch.int32)
        logits = self.model(x.to(self.dtype), **kw).logits
        return torch.log_softmax(logits.float(), dim=-1)

    def emissions(self, audios: list[np.ndarray]):
        """Log-softmax emissions for a batch: ([B, T, C] fp32 tensor on the device, frame counts)."""
        dummy = _Item([], [], [0], [0])
        x, lengths, _, _, frames, _ = self._host_batch(audios, [dummy] * len(audios))
        with self.torch.inference_mode():
            lp = self._log_probs(x.to(self.device), lengths.to(self.device), bool((lengths < x.shape[1]).any()))
        return lp, [int(v) for v in frames]

    def align(self, audio: np.ndarray, transcript: str, language: str) -> Alignment:
        res = self.align_batch([audio], [transcript], [language])[0]
        if isinstance(res, AlignmentFailure):
            raise res
        return res

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Items sorted by length, cut into batches of at most max_batch_s of padded audio."""
        batches, cur, longest = [], [], 0
        for i in order:
            longest = max(longest, lengths[i])
            if cur and longest * (len(cur) + 1) / 16000 > self.max_batch_s:
                batches.append(cur)
                cur, longest = [], lengths[i]
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def align_batch(self, audios: list[np.ndarray], transcripts: list[str], languages: list[str]):
        """One result per item: an Alignment or an AlignmentFailure."""
        from concurrent.futures import ThreadPoolExecutor

        results: list = [None] * len(audios)
        prepared = {}
        for i, (a, t, lang) in enumerate(zip(audios, transcripts, languages)):
            try:
                prepared[i] = self._prepare(t, lang, a)
            except AlignmentFailure as exc:
                results[i] = exc
        order = sorted(prepared, key=lambda i: len(audios[i]))
        batches = self._batches(order, [len(a) for a in audios])
        if not batches:
            return results
        times = self.times

        def host(batch):
            w0 = time.perf_counter()
            out = self._host_batch([audios[i] for i in batch], [prepared[i] for i in batch])
            if times:
                times.ms["host_prepare"] += (time.perf_counter() - w0) * 1000
            return out

        pool = ThreadPoolExecutor(1) if self.cuda else None
        ahead = [pool.submit(host, b) if pool else None for b in batches[:2]]
        pending = []
        try:
            for k, batch in enumerate(batches):
                hb = ahead[k].result() if pool else host(batch)
                if pool and k + 2 < len(batches):
                    ahead.append(pool.submit(host, batches[k + 2]))
                pending.append((batch, self._launch(*hb)))
                if len(pending) > 1:  # turn the previous batch into words while the device runs this one
                    self._finish(*pending.pop(0), prepared, audios, results)
            while pending:
                self._finish(*pending.pop(0), prepared, audios, results)
        finally:
            if pool:
                pool.shutdown()
        return results

    def _launch(self, x, lengths, tgt, tlen, frames, word_of):
        """Queue a batch on the device: copies, model, search, word boundaries, the copies back."""
        torch = self.torch
        marks = []

        def mark(name):
            if self.times is not None and self.cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                marks.append((name, ev))

        # decided on the host, so nothing below waits for the device
        padded, n_words = bool((lengths < x.shape[1]).any()), int(word_of.max()) + 1
        with torch.inference_mode():
            mark("to_device")
            x, lengths, tgt, tlen, il, word_of = (t.to(self.device, non_blocking=True)
                                                  for t in (x, lengths, tgt, tlen, frames, word_of))
            mark("emissions")
            lp = self._log_probs(x, lengths, padded)
            mark("search")
            states, scores, il, tlen = ctc_search(lp, tgt, self.blank, il, tlen)
            first, last, conf = word_spans(lp, states.to(lp.device).long(), tgt, word_of, il, self.blank, n_words)
            mark("to_host")
            out = (scores, first, last, conf)
            if self.cuda:
                host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in out]
                for h, t in zip(host, out):
                    h.copy_(t, non_blocking=True)
                mark("end")
                done = torch.cuda.Event()
                done.record()
            else:
                host, done = list(out), None
        if marks:
            self.times.add_events(marks)
        return host, done, [int(v) for v in frames]

    def _finish(self, batch, launched, prepared, audios, results):
        (scores, first, last, conf), done, frames = launched
        if done is not None:
            done.synchronize()
        w0 = time.perf_counter()
        scores, first, last, conf = scores.numpy(), first.numpy(), last.numpy(), conf.numpy()
        for k, i in enumerate(batch):
            if scores[k] <= NEG_INF / 2:
                results[i] = AlignmentFailure("audio too short for the transcript: no CTC path fits")
                continue
            item = prepared[i]
            n = len(item.keep)
            frame_s = len(audios[i]) / 16000 / max(1, frames[k])
            starts = np.round(first[k, :n] * frame_s, 4).tolist()
            ends = np.round(last[k, :n] * frame_s, 4).tolist()
            scores_w = conf[k, :n].astype(np.float64)
            words = energy.refine([AlignedWord(item.tokens[item.keep[w]], starts[w], ends[w], float(scores_w[w])) for w in range(n)], audios[i])
            results[i] = Alignment(words=words, score=float(scores_w.mean()))
        if self.times is not None:
            self.times.ms["host_finish"] += (time.perf_counter() - w0) * 1000


def word_spans(lp, states, targets, word_of, input_lengths, blank: int, n_words: int):
    """Each word's first frame, last frame + 1 and confidence, on the device ([B, W] each).

    A word spans the frames of its tokens on the best path (the delimiters between words are
    not part of any word); its confidence is the mean over its tokens of the token's mean
    probability over its frames. ``word_of`` [B, L]: the word of each target position, -1 for
    a delimiter or padding; ``n_words`` its largest value + 1, from the host."""
    import torch

    B, T = states.shape
    L = targets.shape[1]
    W = max(1, n_words)
    t_idx = torch.arange(T, device=lp.device)[None, :].expand(B, T)
    on_token = (states % 2 == 1) & (t_idx < input_lengths[:, None])
    pos = torch.where(on_token, (states - 1) // 2, L)  # L: a bin for frames on blanks
    tok = torch.where(on_token, targets.gather(1, pos.clamp(max=L - 1)), blank)
    p = lp.gather(2, tok[..., None])[..., 0].exp()
    zeros = torch.zeros((B, L + 1), dtype=torch.float32, device=lp.device)
    p_sum = zeros.scatter_add(1, pos, torch.where(on_token, p, 0.0))
    n = zeros.scatter_add(1, pos, on_token.to(torch.float32))
    big = torch.full((B, L + 1), T, dtype=torch.long, device=lp.device)
    f0 = big.scatter_reduce(1, pos, t_idx, reduce="amin", include_self=True)[:, :L]
    f1 = torch.full((B, L + 1), -1, dtype=torch.long, device=lp.device).scatter_reduce(
        1, pos, t_idx, reduce="amax", include_self=True)[:, :L] + 1
    tok_conf = (p_sum / n.clamp(min=1))[:, :L]
    w = torch.where(word_of >= 0, word_of, W)  # W: a bin for delimiters and padding
    wf0 = torch.full((B, W + 1), T, dtype=torch.long, device=lp.device).scatter_reduce(
        1, w, f0, reduce="amin", include_self=True)[:, :W]
    wf1 = torch.zeros((B, W + 1), dtype=torch.long, device=lp.device).scatter_reduce(
        1, w, f1, reduce="amax", include_self=True)[:, :W]
    wsum = torch.zeros((B, W + 1), dtype=torch.float32, device=lp.device).scatter_add(1, w, tok_conf)
    wn = torch.zeros((B, W + 1), dtype=torch.float32, device=lp.device).scatter_add(1, w, (word_of >= 0).float())
    return wf0.to(torch.int32), wf1.to(torch.int32), (wsum / wn.clamp(min=1))[:, :W]
