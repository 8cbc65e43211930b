"""CTC forced alignment for wav2vec2-family checkpoints (Wav2Vec2ForCTC, MMS, ...)
loaded from a local folder. Emissions are computed in batches on the GPU when
there is one; the Viterbi search over the CTC topology is written in torch, so
it runs on CUDA and CPU alike. Needs the `align` extra (torch, transformers).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import AlignedWord, Alignment, AlignmentFailure, normalise_word, precheck

NEG_INF = -1e30


def ctc_viterbi(log_probs, targets, blank: int, input_lengths=None, target_lengths=None):
    """Best CTC path for each item of a batch.

    log_probs: [B, T, C] (or [T, C]) log-softmax emissions; targets: [B, L] (or [L])
    token ids, padded with anything past target_lengths. Returns, per item, a
    list of (token index in the target, first frame, last frame + 1), or None
    when no path exists (the audio has fewer frames than the target needs).

    States follow the CTC topology: blank, t1, blank, t2, ..., blank (2L+1); a
    state may repeat, advance by one, or skip a blank between two different
    tokens. Backpointers are kept on the device as int8; only the final
    backtrack, O(T) per item, runs on the host.
    """
    import torch

    single = log_probs.dim() == 2
    if single:
        log_probs, targets = log_probs[None], targets[None]
    B, T, _ = log_probs.shape
    L = targets.shape[1]
    dev = log_probs.device
    if input_lengths is None:
        input_lengths = torch.full((B,), T, dtype=torch.long, device=dev)
    if target_lengths is None:
        target_lengths = torch.full((B,), L, dtype=torch.long, device=dev)
    S = 2 * L + 1
    ext = torch.full((B, S), blank, dtype=torch.long, device=dev)
    ext[:, 1::2] = targets
    s_idx = torch.arange(S, device=dev)
    valid_state = s_idx[None, :] < (2 * target_lengths[:, None] + 1)
    # skip from s-2 to s: s is a token, and differs from the token two states back
    can_skip = torch.zeros((B, S), dtype=torch.bool, device=dev)
    can_skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    emit = torch.gather(log_probs, 2, ext[:, None, :].expand(B, T, S))  # [B, T, S]
    emit = emit.masked_fill(~valid_state[:, None, :], NEG_INF)
    alpha = torch.full((B, S), NEG_INF, dtype=log_probs.dtype, device=dev)
    alpha[:, 0] = emit[:, 0, 0]
    if S > 1:
        alpha[:, 1] = emit[:, 0, 1]
    back = torch.zeros((B, T, S), dtype=torch.int8, device=dev)
    neg = torch.full((B, 1), NEG_INF, dtype=log_probs.dtype, device=dev)
    neg2 = torch.full((B, 2), NEG_INF, dtype=log_probs.dtype, device=dev)
    for t in range(1, T):
        stay = alpha
        step = torch.cat([neg, alpha[:, :-1]], dim=1)
        skip = torch.cat([neg2, alpha[:, :-2]], dim=1).masked_fill(~can_skip, NEG_INF)
        cand = torch.stack([stay, step, skip], dim=2)  # [B, S, 3]
        best, arg = cand.max(dim=2)
        new = best + emit[:, t]
        active = (t < input_lengths)[:, None]
        alpha = torch.where(active, new, alpha)
        back[:, t] = torch.where(active, arg.to(torch.int8), torch.zeros_like(arg, dtype=torch.int8))
    alpha, back = alpha.cpu(), back.cpu().numpy()
    out = []
    for b in range(B):
        tl, il = int(target_lengths[b]), int(input_lengths[b])
        last = 2 * tl
        ends = [last] + ([last - 1] if tl > 0 else [])
        scores = [float(alpha[b, s]) for s in ends]
        s = ends[int(np.argmax(scores))]
        if max(scores) <= NEG_INF / 2:
            out.append(None)
            continue
        states = np.empty(il, dtype=np.int64)
        for t in range(il - 1, -1, -1):
            states[t] = s
            s -= int(back[b, t, s])
        spans = []
        for j in range(tl):
            frames = np.nonzero(states == 2 * j + 1)[0]
            spans.append((j, int(frames[0]), int(frames[-1]) + 1))
        out.append(spans)
    return out[0] if single else out


@dataclass
class _Item:
    tokens: list[str]
    keep: list[int]  # transcript token index of each spelled word
    target: list[int]
    word_of_target: list[int]  # for each target position: index into keep, or -1 for a delimiter


class CTCAligner:
    """Aligns with a local Wav2Vec2ForCTC folder (config, weights, vocab.json)."""

    languages = None  # the vocabulary decides: words it cannot spell are a reject

    def __init__(self, model_dir: str | Path, device: str | None = None, max_batch_s: float = 200.0):
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
        self.model = Wav2Vec2ForCTC.from_pretrained(str(model_dir), local_files_only=True).to(self.device).eval()
        vocab = json.loads((model_dir / "vocab.json").read_text())
        if vocab and isinstance(next(iter(vocab.values())), dict):  # MMS: {language: vocab}
            vocab = next(iter(vocab.values()))
        self.vocab: dict[str, int] = vocab
        self.blank = vocab.get("<pad>", self.model.config.pad_token_id or 0)
        self.delim = vocab.get("|")
        self.lower = sum(k.islower() for k in vocab) >= sum(k.isupper() for k in vocab)
        cfg = json.loads((model_dir / "config.json").read_text())
        self.name = f"ctc/{cfg.get('_name_or_path') or model_dir.name}"
        self.max_batch_s = max_batch_s
        self.do_normalize = True
        pre = model_dir / "preprocessor_config.json"
        if pre.is_file():
            self.do_normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))

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

    def emissions(self, audios: list[np.ndarray]):
        """Log-softmax emissions for a batch: ([B, T, C] tensor on the device, frame counts)."""
        torch = self.torch
        n = max(len(a) for a in audios)
        x = np.zeros((len(audios), n), dtype=np.float32)
        mask = np.zeros((len(audios), n), dtype=np.int64)
        for i, a in enumerate(audios):
            if self.do_normalize:
                a = (a - a.mean()) / np.sqrt(a.var() + 1e-7)
            x[i, : len(a)] = a
            mask[i, : len(a)] = 1
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(self.device)
            mt = torch.from_numpy(mask).to(self.device)
            kw = {"attention_mask": mt} if self.model.config.feat_extract_norm == "layer" else {}
            logits = self.model(xt, **kw).logits
            lengths = self.model._get_feat_extract_output_lengths(torch.tensor([len(a) for a in audios]))
        return torch.log_softmax(logits.float(), dim=-1), [int(v) for v in lengths]

    def align(self, audio: np.ndarray, transcript: str, language: str) -> Alignment:
        res = self.align_batch([audio], [transcript], [language])[0]
        if isinstance(res, AlignmentFailure):
            raise res
        return res

    def align_batch(self, audios: list[np.ndarray], transcripts: list[str], languages: list[str]):
        """One result per item: an Alignment or an AlignmentFailure. Items are batched by
        duration (sorted, up to max_batch_s of audio per forward pass)."""
        torch = self.torch
        results: list = [None] * len(audios)
        prepared = {}
        for i, (a, t, lang) in enumerate(zip(audios, transcripts, languages)):
            try:
                prepared[i] = self._prepare(t, lang, a)
            except AlignmentFailure as exc:
                results[i] = exc
        order = sorted(prepared, key=lambda i: len(audios[i]))
        batches, cur, longest = [], [], 0
        for i in order:
            longest = max(longest, len(audios[i]))
            if cur and longest * (len(cur) + 1) / 16000 > self.max_batch_s:
                batches.append(cur)
                cur, longest = [], len(audios[i])
            cur.append(i)
        if cur:
            batches.append(cur)
        for batch in batches:
            lp, frames = self.emissions([audios[i] for i in batch])
            L = max(len(prepared[i].target) for i in batch)
            tgt = torch.zeros((len(batch), L), dtype=torch.long, device=lp.device)
            for k, i in enumerate(batch):
                tgt[k, : len(prepared[i].target)] = torch.tensor(prepared[i].target)
            paths = ctc_viterbi(lp, tgt, self.blank,
                                torch.tensor(frames, device=lp.device),
                                torch.tensor([len(prepared[i].target) for i in batch], device=lp.device))
            probs = lp.exp().cpu().numpy()
            for k, i in enumerate(batch):
                results[i] = self._words(prepared[i], paths[k], probs[k], len(audios[i]) / 16000 / max(1, frames[k]))
        return results

    def _words(self, item: _Item, spans, probs: np.ndarray, frame_s: float):
        if spans is None:
            return AlignmentFailure("audio too short for the transcript: no CTC path fits")
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        conf: dict[int, list[float]] = {}
        for j, f0, f1 in spans:
            w = item.word_of_target[j]
            if w < 0:
                continue
            first.setdefault(w, f0)
            last[w] = f1
            conf.setdefault(w, []).append(float(probs[f0:f1, item.target[j]].mean()))
        words = [
            AlignedWord(item.tokens[item.keep[w]], round(first[w] * frame_s, 4), round(last[w] * frame_s, 4),
                        float(np.mean(conf[w])))
            for w in range(len(item.keep))
        ]
        return Alignment(words=words, score=float(np.mean([w.score for w in words])))
