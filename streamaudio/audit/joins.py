"""`streamaudio audit OUT`: do the seams where clips were joined give the reply away?

The end of a question or of a sound event rightly tells a model that a reply may be due, so this
audit looks only where the content says nothing: short windows in which, by the episode's own
segments and words, no foreground word or event is active (gaps between turns, pauses between
words, the bed alone). From the low-level acoustics of those windows (noise floor level, coarse
spectrum and its tilt and flatness, spectral flux, level ripple, sample-level steps and clicks,
and their change from the quiet window just before) a small gradient-boosting classifier
predicts "a respond label is due within the next 2 chunks". It is trained on some episodes and
scores others (5 folds by episode, never by window, averaged over 4 deals of the folds), and the
ROC AUC of the held-out scores is reported per sub-task with a bootstrap interval over episodes.
The AUC compares a window that starts a quiet run only with others that do, and one that
continues a run only with others that continue one: that a word or event just ended is the
content's to say, not the seam's. With seamless joins the quiet carries no information about
when a reply is due and the AUC is 0.5; a clip room tone that starts and stops with the clip, or
a hard cut, lets the classifier find the edges of clips in the quiet, and the AUC rises.

It reads only the shipped episodes (FLAC, segments, words, turns, chunk_labels), never plans.
"""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from ..format import CHUNK_EPS, SAMPLE_RATE

# 100 ms windows on a 100 ms grid from t=0: four per 400 ms chunk, so a window never straddles two
# chunks (its label is unambiguous) and the half-chunk positions where TFJP places seams are
# window boundaries. Short enough to fit in the pauses between words and in the 0.1-0.5 s between
# a question's last word and its reply; long enough for five overlapping 32 ms FFT frames, which
# give a coarse noise spectrum and a frame-to-frame flux.
WINDOW_S = 0.1
# Word timings from forced alignment are good to a few tens of ms, and a word's release runs past
# its aligned end: a window must keep this far from every word.
WORD_GUARD_S = 0.05
# sound and music: attack and decay around the recorded active span
EVENT_GUARD_S = 0.05
# A turn about a whole utterance is settled where the utterance stops being heard (reverberation
# and release included, render.mix.settle_turns); that tail is content too, up to this long.
MAX_TAIL_S = 1.0
# the label: a respond label in the window's chunk or in the one after it
HORIZON_CHUNKS = 2
N_FOLDS = 5
# Held-out scores are averaged over this many different deals of the episodes into folds: with
# ten episodes a sub-task (the demo), one deal moved a sub-task's AUC by up to 0.25 from seed to
# seed; four halve that spread (the bootstrap interval covers the episodes, not the training).
N_REPEATS = 4
N_BOOT = 1000
# fewer held-out windows of either class than this, or fewer episodes, and a sub-task's AUC is noise
MIN_CLASS_WINDOWS = 20
MIN_EPISODES = 3

_FFT = 512
_N_BANDS = 8
# eight log-spaced bands from 62.5 Hz to 8 kHz: a coarse spectral shape of the noise floor
_BAND_EDGES_HZ = np.geomspace(62.5, SAMPLE_RATE / 2, _N_BANDS + 1)
_RIPPLE_FRAME = 160  # 10 ms sub-frames for the level ripple inside a window
_FLOOR = 1e-12  # power floor: digital silence reads -120 dB, not -inf

FEATURES = (
    ["level_db"]
    + [f"shape_b{i}" for i in range(_N_BANDS)]
    + ["tilt_db_per_band", "flatness_db", "flux_mean", "flux_max", "ripple_std_db", "ripple_range_db",
       "click_db", "step_db"]
    + ["d_level_db", "d_shape", "d_tilt", "d_flatness_db", "d_click_db"]
    + [f"d_band_b{i}" for i in range(_N_BANDS)]
)


class AuditError(ValueError):
    pass


# ---------------------------------------------------------------- where the content says nothing

def foreground_spans(row: dict) -> list[tuple[float, float]]:
    """Time spans (s) in which a foreground word or event is, or may still be, heard.

    Foreground = every segment whose role is not background, except noise (a noise segment is
    a bed whatever its role: the environment noise track lies under the whole stream).
    Speech with words: each word with WORD_GUARD_S either side, so the pauses between words and
    a clip's lead-in and tail (where its own room tone is all there is) stay in the audit.
    Speech without words: the whole segment. Sound and music: attrs.active_span_s when the recipe
    recorded it (the clip's silent padding is then audited), else the whole segment: without the
    stems this audit cannot tell the audible part from the padding, and calling an event quiet
    would score the event itself. Each with EVENT_GUARD_S either side.
    A turn's evidence_s is where the audio it depends on stops being heard; when that is after
    the audible end computed above (reverberation, a voice's release), the span runs on to it.
    """
    segs = row["segments"]
    spans: list[tuple[float, float]] = []
    audible_end: dict[int, float] = {}
    for i, seg in enumerate(segs):
        if seg["role"] == "background" or seg["kind"] == "noise":
            continue
        words = seg.get("words") or []
        if seg["kind"] == "speech" and words:
            spans += [(w["start_s"] - WORD_GUARD_S, w["end_s"] + WORD_GUARD_S) for w in words]
            audible_end[i] = words[-1]["end_s"]
            continue
        a, b = seg["start_s"], seg["end_s"]
        if seg["kind"] != "speech":
            span = _active_span(seg)
            if span is not None:
                a, b = max(a, span[0]), min(b, span[1])
        spans.append((a - EVENT_GUARD_S, b + EVENT_GUARD_S))
        audible_end[i] = b
    for t in row["turns"]:
        ends = [(audible_end[i], i) for i in t["evidence"] if i in audible_end]
        if not ends:
            continue
        end, _ = max(ends)
        if end < t["evidence_s"] <= end + MAX_TAIL_S:
            spans.append((end, t["evidence_s"] + WORD_GUARD_S))
    return spans


def _active_span(seg: dict) -> tuple[float, float] | None:
    try:
        span = json.loads(seg.get("attrs") or "{}").get("active_span_s")
    except ValueError:
        return None
    if isinstance(span, list) and len(span) == 2 and all(isinstance(v, (int, float)) for v in span):
        return float(span[0]), float(span[1])
    return None


def quiet_window_starts(row: dict, window_s: float = WINDOW_S) -> np.ndarray:
    """Start times (s) of the grid windows that overlap no foreground span."""
    n = int(math.floor(row["duration_s"] / window_s + CHUNK_EPS))
    free = np.ones(n, dtype=bool)
    for a, b in foreground_spans(row):
        # windows [k*w, (k+1)*w) that overlap (a, b)
        k0 = max(0, int(math.floor(a / window_s + CHUNK_EPS)))
        k1 = min(n, int(math.ceil(b / window_s - CHUNK_EPS)))
        free[k0:k1] = False
    return np.flatnonzero(free) * window_s


def window_labels(starts_s: np.ndarray, chunk_labels, chunk_s: float, window_s: float = WINDOW_S) -> np.ndarray:
    """1 where a respond label falls on the chunk holding the window, or on the next one.

    The model decides after each chunk; having heard this window, is it to reply at the end of
    this chunk or of the next (HORIZON_CHUNKS = 2)?"""
    labels = np.asarray(chunk_labels, dtype=np.int8)
    k = np.floor((starts_s + window_s / 2) / chunk_s).astype(int)  # the window's middle: grid-safe
    due = np.zeros(len(starts_s), dtype=np.int8)
    for h in range(HORIZON_CHUNKS):
        kk = k + h
        ok = kk < len(labels)
        due[ok] |= labels[kk[ok]]
    return due


# ---------------------------------------------------------------- acoustics of a window

def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(_FFT, 1 / SAMPLE_RATE)
    m = np.zeros((_N_BANDS, len(freqs)))
    for b in range(_N_BANDS):
        sel = (freqs >= _BAND_EDGES_HZ[b]) & (freqs < _BAND_EDGES_HZ[b + 1] + (b == _N_BANDS - 1))
        m[b, sel] = 1.0 / max(1, sel.sum())
    return m


_BANDS = _band_matrix()


def window_features(x: np.ndarray, starts_s: np.ndarray, window_s: float = WINDOW_S) -> np.ndarray:
    """Features (len(starts_s), len(FEATURES)) of the windows starting at starts_s in x (float, ±1).

    Per window: level (dBFS), the coarse spectrum's shape (band dB minus their mean), its tilt
    and flatness, spectral flux between frames (mean, max), the ripple of 10 ms levels, the
    largest sample step and second difference against the window's typical ones (a cut or a click
    is one sample pair far off the rest; the sample before the window is included, so a cut on
    a window boundary counts). Then the change of level, shape, tilt, flatness, clicks and each
    band from the window just before, when that one is quiet too (continues_run); NaN for the
    first window of a quiet run. Not from the last quiet window before a foreground stretch: how
    far the bed (noise tracks crossfading from clip to clip) drifts under a stretch grows with
    its length, and a long stretch is often a question with its reply due after it. On the demo
    with TFJP that change alone scored AUC 0.60 while each window's own acoustics scored 0.50.
    """
    n = int(round(window_s * SAMPLE_RATE))
    m = len(starts_s)
    out = np.full((m, len(FEATURES)), np.nan, dtype=np.float64)
    if m == 0:
        return out
    s0 = np.round(np.asarray(starts_s) * SAMPLE_RATE).astype(int)
    # the first sample repeated before the stream (its start is not a cut), silence after it
    pad = np.concatenate([np.full(2, x[0] if len(x) else 0.0), x.astype(np.float64), np.zeros(n)])
    idx = s0[:, None] + np.arange(n + 2)[None, :]  # two samples before each window, then the window
    seg = pad[idx]
    win = seg[:, 2:]
    n_frames = 1 + max(0, (n - _FFT) // (_FFT // 2))
    hop = (n - _FFT) // max(1, n_frames - 1) if n_frames > 1 else 0
    frames = np.stack([win[:, f * hop:f * hop + _FFT] for f in range(n_frames)], axis=1)
    spec = np.abs(np.fft.rfft(frames * np.hanning(_FFT), axis=-1)) ** 2  # (m, frames, bins)
    band_db = 10 * np.log10(spec @ _BANDS.T + _FLOOR)  # (m, frames, bands)
    bands = band_db.mean(axis=1)
    level = 10 * np.log10((win ** 2).mean(axis=1) + _FLOOR)
    shape = bands - bands.mean(axis=1, keepdims=True)
    centred = np.arange(_N_BANDS) - (_N_BANDS - 1) / 2
    tilt = shape @ centred / (centred ** 2).sum()
    p = spec.mean(axis=1) + _FLOOR
    flatness = 10 * np.log10(np.exp(np.log(p).mean(axis=1)) / p.mean(axis=1))
    if n_frames > 1:
        rise = np.clip(np.diff(band_db, axis=1), 0, None)
        flux = np.sqrt((rise ** 2).mean(axis=2))
        flux_mean, flux_max = flux.mean(axis=1), flux.max(axis=1)
    else:
        flux_mean = flux_max = np.zeros(m)
    sub = win[:, :n // _RIPPLE_FRAME * _RIPPLE_FRAME].reshape(m, -1, _RIPPLE_FRAME)
    ripple = 10 * np.log10((sub ** 2).mean(axis=2) + _FLOOR)
    d1 = np.abs(np.diff(seg[:, 1:], axis=1))
    d2 = np.abs(np.diff(seg, n=2, axis=1))
    click = 20 * np.log10((d2.max(axis=1) + 1e-9) / (np.median(d2, axis=1) + 1e-9))
    step = 20 * np.log10((d1.max(axis=1) + 1e-9) / (np.median(d1, axis=1) + 1e-9))
    own = np.column_stack([level, shape, tilt, flatness, flux_mean, flux_max, ripple.std(axis=1),
                           ripple.max(axis=1) - ripple.min(axis=1), click, step])
    k = own.shape[1]
    out[:, :k] = own
    cont = np.flatnonzero(continues_run(starts_s, window_s))
    if len(cont):
        prev = cont - 1
        out[cont, k] = level[cont] - level[prev]
        out[cont, k + 1] = np.sqrt(((shape[cont] - shape[prev]) ** 2).mean(axis=1))
        out[cont, k + 2] = tilt[cont] - tilt[prev]
        out[cont, k + 3] = flatness[cont] - flatness[prev]
        out[cont, k + 4] = click[cont] - click[prev]
        out[cont, k + 5:] = bands[cont] - bands[prev]
    return out


def continues_run(starts_s: np.ndarray, window_s: float = WINDOW_S) -> np.ndarray:
    """True where the grid window just before is quiet too; False for the first of a quiet run."""
    starts_s = np.asarray(starts_s, dtype=float)
    gap = np.diff(starts_s, prepend=-np.inf)
    return np.abs(gap - window_s) < window_s / 10


# ---------------------------------------------------------------- episodes

@dataclass
class EpisodeWindows:
    id: str
    subtask: str
    starts_s: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    continues: np.ndarray  # bool: the window before is quiet too (change features exist)

    @property
    def groups(self) -> np.ndarray:
        """The window's group for the AUC: 1 continues a quiet run, 0 starts one."""
        return self.continues.astype(np.int8)


def decode_audio(row: dict) -> np.ndarray:
    data = (row.get("audio") or {}).get("bytes")
    if not data:
        raise AuditError(f"{row.get('id')}: no audio bytes")
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception as exc:
        raise AuditError(f"{row.get('id')}: audio does not decode ({exc})") from exc
    if sr != SAMPLE_RATE or x.ndim != 1:
        raise AuditError(f"{row.get('id')}: audio is {sr} Hz with shape {x.shape}, not 16 kHz mono")
    return x


def episode_windows(row: dict, window_s: float = WINDOW_S) -> EpisodeWindows:
    """The quiet windows of one shipped episode (a format v2 row), their features and labels."""
    x = decode_audio(row)
    starts = quiet_window_starts(row, window_s)
    starts = starts[np.round((starts + window_s) * SAMPLE_RATE) <= len(x)]
    return EpisodeWindows(row["id"], row["subtask"], starts, window_features(x, starts, window_s),
                          window_labels(starts, row["chunk_labels"], row["chunk_s"], window_s),
                          continues_run(starts, window_s))


_COLUMNS = ["id", "subtask", "audio", "duration_s", "chunk_s", "segments", "turns", "chunk_labels"]


def dataset_windows(out: str | Path, subtasks: list[str] | None = None, progress=None) -> list[EpisodeWindows]:
    data = Path(out) / "data"
    shards = sorted(data.glob("*/*.parquet"))
    if not shards:
        raise AuditError(f"{out}: no shards under data/<subtask>/ (is this a built dataset?)")
    if subtasks is not None:
        missing = sorted(set(subtasks) - {s.parent.name for s in shards})
        if missing:
            raise AuditError(f"{out}: no shards of sub-task(s) {missing} under data/")
    res = []
    for shard in shards:
        if subtasks is not None and shard.parent.name not in subtasks:
            continue
        try:
            pf = pq.ParquetFile(shard)
            for batch in pf.iter_batches(batch_size=16, columns=_COLUMNS):
                for row in batch.to_pylist():
                    res.append(episode_windows(row))
                    if progress:
                        progress()
        except AuditError:
            raise
        except Exception as exc:
            raise AuditError(f"{shard}: unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    return res


# ---------------------------------------------------------------- classifier and scores

def _classifier(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # shallow, regularised, no early stopping (its validation split would be by window, and
    # random): the same folds and seed give the same scores
    return HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=20,
                                          l2_regularization=1.0, early_stopping=False, random_state=seed)


def episode_folds(episodes: list[EpisodeWindows], n_folds: int, seed: int) -> dict[str, int]:
    """Episode id -> fold: each sub-task's episodes shuffled (seeded) and dealt round the folds,
    so every fold holds episodes of every sub-task that has enough of them."""
    rng = np.random.default_rng(seed)
    by_st: dict[str, list[str]] = {}
    for e in episodes:
        by_st.setdefault(e.subtask, []).append(e.id)
    folds = {}
    offset = 0
    for st in sorted(by_st):
        ids = sorted(by_st[st])
        for j, i in enumerate(rng.permutation(len(ids))):
            folds[ids[i]] = (offset + j) % n_folds
        offset += len(ids)  # the next sub-task starts where this one stopped: folds stay even
    return folds


def held_out_scores(episodes: list[EpisodeWindows], n_folds: int = N_FOLDS, seed: int = 0,
                    repeats: int = N_REPEATS) -> list[np.ndarray]:
    """Per episode, the scores of its windows from models that never saw the episode: the mean
    over `repeats` deals of the episodes into folds."""
    runs = [_held_out_once(episodes, n_folds, seed * 1000 + r) for r in range(repeats)]
    return [np.mean([run[i] for run in runs], axis=0) for i in range(len(episodes))]


def _held_out_once(episodes: list[EpisodeWindows], n_folds: int, seed: int) -> list[np.ndarray]:
    from threadpoolctl import threadpool_limits

    folds = episode_folds(episodes, n_folds, seed)
    fold_of = np.array([folds[e.id] for e in episodes])
    scores = [np.zeros(len(e.labels)) for e in episodes]
    for f in range(n_folds):
        test = np.flatnonzero(fold_of == f)
        train = np.flatnonzero(fold_of != f)
        if not len(test):
            continue
        X = np.concatenate([episodes[i].features for i in train] or [np.zeros((0, len(FEATURES)))])
        y = np.concatenate([episodes[i].labels for i in train] or [np.zeros(0, np.int8)])
        if len(np.unique(y)) < 2:
            continue  # nothing to learn: scores stay constant (AUC 0.5)
        # one thread: OpenMP's spinning threads on a shared machine (a build host, CI) made a fit
        # 20x slower than one thread in our measurements; the folds are small anyway
        with threadpool_limits(1):
            clf = _classifier(seed).fit(X, y)
            for i in test:
                if len(episodes[i].labels):
                    scores[i] = clf.predict_proba(episodes[i].features)[:, 1]
    return scores


def roc_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray | None = None) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) count, ties counted half; nan with one class.

    With groups, only pairs of a positive and a negative window of the same group count (a
    stratified AUC): whether a window starts a quiet run or continues one is a fact about the
    content (a word or event just ended), so a score may not win by telling the groups apart."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    groups = np.zeros(len(labels), np.int8) if groups is None else np.asarray(groups)
    num = den = 0.0
    for g in np.unique(groups):
        sel = groups == g
        c = _pair_counts([labels[sel]], [scores[sel]])
        num += c[0, 0]
        den += float((labels[sel] == 1).sum()) * float((labels[sel] == 0).sum())
    return float(num / den) if den else float("nan")


def _pair_counts(labels: list[np.ndarray], scores: list[np.ndarray]) -> np.ndarray:
    """C[e, f]: pairs (positive window of episode e, negative window of episode f) ranked right,
    ties counted half. The AUC of any multiset of episodes with counts w is w.C.w / (w.P)(w.N)."""
    n = len(labels)
    pos_s = [s[lab == 1] for lab, s in zip(labels, scores)]
    pos_all = np.concatenate(pos_s) if n else np.zeros(0)
    pos_ep = np.repeat(np.arange(n), [len(p) for p in pos_s])
    c = np.zeros((n, n))
    for f, (lab, s) in enumerate(zip(labels, scores)):
        neg = np.sort(s[lab == 0])
        if len(neg) and len(pos_all):
            lo = np.searchsorted(neg, pos_all, "left")
            hi = np.searchsorted(neg, pos_all, "right")
            c[:, f] = np.bincount(pos_ep, weights=lo + 0.5 * (hi - lo), minlength=n)
    return c


def bootstrap_auc(labels: list[np.ndarray], scores: list[np.ndarray], groups: list[np.ndarray], n_boot: int, rng,
                  strata: list[str] | None = None) -> tuple[float, float]:
    """95% percentile interval of the (group-stratified) AUC over episodes drawn with replacement
    (within strata: the overall score keeps each sub-task's number of episodes)."""
    n = len(labels)
    by_stratum: dict[str, list[int]] = {}
    for i, s in enumerate(strata or [""] * n):
        by_stratum.setdefault(s, []).append(i)
    w = np.zeros((n_boot, n))
    rows = np.arange(n_boot)[:, None]
    for members in by_stratum.values():
        pick = rng.choice(np.asarray(members), size=(n_boot, len(members)), replace=True)
        np.add.at(w, (np.broadcast_to(rows, pick.shape), pick), 1.0)
    num = np.zeros(n_boot)
    den = np.zeros(n_boot)
    for g in np.unique(np.concatenate(groups)) if n else []:
        sel = [gr == g for gr in groups]
        c = _pair_counts([lab[m] for lab, m in zip(labels, sel)], [s[m] for s, m in zip(scores, sel)])
        n_pos = np.array([float((lab[m] == 1).sum()) for lab, m in zip(labels, sel)])
        n_neg = np.array([float((lab[m] == 0).sum()) for lab, m in zip(labels, sel)])
        num += np.einsum("be,ef,bf->b", w, c, w)
        den += (w @ n_pos) * (w @ n_neg)
    ok = den > 0
    if ok.sum() < n_boot // 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(num[ok] / den[ok], [2.5, 97.5])
    return float(lo), float(hi)


@dataclass
class Score:
    episodes: int  # episodes read
    episodes_with_windows: int
    windows: int
    positive: int
    auc: float | None = None
    ci: tuple[float, float] | None = None
    note: str = ""
    # the features that alone separate the classes best, each with its own AUC (> 0.5: higher
    # values where a reply is due): where to look when the AUC is high
    cues: list[tuple[str, float]] = field(default_factory=list)

    @property
    def negative(self) -> int:
        return self.windows - self.positive

    def to_dict(self) -> dict:
        return {"auc": self.auc, "ci95": list(self.ci) if self.ci else None, "windows": self.windows,
                "positive": self.positive, "negative": self.negative, "episodes": self.episodes,
                "episodes_with_windows": self.episodes_with_windows, "note": self.note,
                "strongest_cues": [{"feature": f, "auc": round(a, 4)} for f, a in self.cues]}


@dataclass
class AuditReport:
    subtasks: dict[str, Score]
    overall: Score
    seconds: float = 0.0
    audio_s: float = 0.0
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"what": "join-artifact audit: ROC AUC of predicting 'a respond label is due within the next "
                        f"{HORIZON_CHUNKS} chunks' from the acoustics of windows with no foreground word or event, "
                        "scored on held-out episodes; 0.5 = the quiet says nothing",
                "settings": self.settings, "overall": self.overall.to_dict(),
                "subtasks": {k: v.to_dict() for k, v in sorted(self.subtasks.items())},
                "seconds": round(self.seconds, 2), "audio_hours": round(self.audio_s / 3600, 4)}


def _score(eps: list[int], episodes, scores, n_boot, rng, strata=None) -> Score:
    labels = [episodes[i].labels for i in eps]
    sc = [scores[i] for i in eps]
    y = np.concatenate(labels) if labels else np.zeros(0, np.int8)
    s = Score(episodes=len(eps), episodes_with_windows=sum(1 for lab in labels if len(lab)),
              windows=len(y), positive=int(y.sum()))
    why = []
    if s.positive < MIN_CLASS_WINDOWS:
        why.append(f"{s.positive} positive windows (< {MIN_CLASS_WINDOWS})")
    if s.negative < MIN_CLASS_WINDOWS:
        why.append(f"{s.negative} negative windows (< {MIN_CLASS_WINDOWS})")
    if s.episodes_with_windows < MIN_EPISODES:
        why.append(f"{s.episodes_with_windows} episodes with quiet windows (< {MIN_EPISODES})")
    if why:
        s.note = "too few to score: " + ", ".join(why)
        return s
    groups = [episodes[i].groups for i in eps]
    g = np.concatenate(groups)
    s.auc = roc_auc(y, np.concatenate(sc), g)
    s.cues = strongest_cues(np.concatenate([episodes[i].features for i in eps]), y, g)
    s.ci = bootstrap_auc(labels, sc, groups, n_boot, rng, [episodes[i].subtask for i in eps] if strata else None)
    return s


def strongest_cues(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, n: int = 3) -> list[tuple[str, float]]:
    """The n features whose values alone rank the windows best (AUC farthest from 0.5)."""
    res = []
    for j, name in enumerate(FEATURES):
        col = features[:, j]
        ok = ~np.isnan(col)
        a = roc_auc(labels[ok], col[ok], groups[ok]) if ok.sum() else float("nan")
        if not math.isnan(a):
            res.append((name, a))
    return sorted(res, key=lambda c: -abs(c[1] - 0.5))[:n]


def audit_episodes(episodes: list[EpisodeWindows], n_folds: int = N_FOLDS, seed: int = 0,
                   n_boot: int = N_BOOT, repeats: int = N_REPEATS) -> AuditReport:
    if len(episodes) < 2:
        raise AuditError(f"{len(episodes)} episode(s): the audit trains on some episodes and scores others")
    scores = held_out_scores(episodes, min(n_folds, len(episodes)), seed, repeats)
    rng = np.random.default_rng(seed)
    by_st: dict[str, list[int]] = {}
    for i, e in enumerate(episodes):
        by_st.setdefault(e.subtask, []).append(i)
    per = {st: _score(idx, episodes, scores, n_boot, rng) for st, idx in sorted(by_st.items())}
    overall = _score(list(range(len(episodes))), episodes, scores, n_boot, rng, strata=True)
    settings = {"window_s": WINDOW_S, "word_guard_s": WORD_GUARD_S, "event_guard_s": EVENT_GUARD_S,
                "horizon_chunks": HORIZON_CHUNKS, "folds": min(n_folds, len(episodes)), "repeats": repeats, "seed": seed,
                "bootstrap": n_boot, "classifier": "sklearn HistGradientBoostingClassifier",
                "features": list(FEATURES)}
    return AuditReport(per, overall, settings=settings)


def audit_dataset(out: str | Path, subtasks: list[str] | None = None, n_folds: int = N_FOLDS, seed: int = 0,
                  n_boot: int = N_BOOT, repeats: int = N_REPEATS, progress=None) -> AuditReport:
    """The join-artifact audit of a built dataset folder (its data/<subtask>/*.parquet)."""
    t0 = time.perf_counter()
    episodes = dataset_windows(out, subtasks, progress)
    rep = audit_episodes(episodes, n_folds, seed, n_boot, repeats)
    rep.seconds = time.perf_counter() - t0
    rep.audio_s = _audio_seconds(out, subtasks)
    return rep


def _audio_seconds(out, subtasks) -> float:
    total = 0.0
    for shard in sorted((Path(out) / "data").glob("*/*.parquet")):
        if subtasks is None or shard.parent.name in subtasks:
            total += float(np.sum(pq.read_table(shard, columns=["duration_s"]).column(0).to_numpy()))
    return total


def _fmt(s: Score) -> str:
    if s.auc is None:
        val = s.note
    else:
        lo, hi = s.ci or (float("nan"), float("nan"))
        cue = f"{s.cues[0][0]} {s.cues[0][1]:.2f}" if s.cues else ""
        val = f"{s.auc:.3f}  [{lo:.3f}, {hi:.3f}]  {cue}"
    return f"{s.episodes:>4} {s.windows:>7} {s.positive:>6}  {val}"


def format_table(rep: AuditReport) -> str:
    """A readable table: per sub-task episodes, quiet windows, positive windows, AUC [95% CI],
    and the single feature that separates best (with its own AUC)."""
    w = max([len(k) for k in rep.subtasks] + [7])
    lines = [f"{'sub-task':<{w}} {'eps':>4} {'windows':>7} {'pos':>6}  AUC    [95% CI, episodes]  strongest cue"]
    lines += [f"{st:<{w}} {_fmt(s)}" for st, s in sorted(rep.subtasks.items())]
    lines.append(f"{'overall':<{w}} {_fmt(rep.overall)}")
    lines.append(f"{rep.audio_s / 3600:.3f} h of audio in {rep.seconds:.1f} s; 0.5 = the quiet between "
                 "foreground says nothing about when a reply is due")
    return "\n".join(lines)
