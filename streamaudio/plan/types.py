"""Episode plans: what a recipe's planning function returns.

A plan is data: where each clip goes, at what gain, with what facts (``attrs``),
and every turn with the audio it depends on (``evidence``). Rendering and
labelling are shared code that only read plans; every plan is stored
(OUT.work/plans), so an episode can be re-rendered and audited without planning
again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..format import CHUNK_S


class EpisodeRejected(ValueError):
    """This one episode cannot be made; it becomes a reject row (stage, reason) and the
    build goes on. Any other exception in a recipe is a bug: it stops the build."""
    stage = "plan"


class PlanError(EpisodeRejected):
    """A recipe cannot plan this episode (e.g. a pool is too small)."""
    stage = "plan"


class RenderError(EpisodeRejected):
    """A clip cannot be rendered (unreadable, shorter than planned)."""
    stage = "render"


@dataclass
class SegmentPlan:
    clip: dict  # a clip-manifest row
    start_s: float  # where the segment starts in the episode
    kind: str  # speech, sound, music, noise
    role: str  # user, other, environment, background
    gain_db: float = 0.0  # level relative to the reference level every clip is normalised to
    clip_start_s: float = 0.0  # where in the clip to start (seconds after the row's offset_s)
    clip_dur_s: float | None = None  # None: to the end of the clip
    loop_to_end: bool = False  # background beds: repeat the clip until the episode ends
    text: str | None = None  # None: the clip's transcript
    labels: list[str] | None = None  # None: the clip's labels
    attrs: dict = field(default_factory=dict)  # facts of the mix (rir, target_language, target_snr_db, ...)
    # a target SNR (dB) over the segments without one that lie under it: the renderer sets this
    # segment's level to reach it, measured as segments.snr_db is (gain_db is then overridden)
    snr_db: float | None = None
    # a room impulse response (a clip row of kind rir): the clip is heard in that room
    rir: dict | None = None
    # fade in and out (seconds); None: the renderer's short join fade. A noise track's clips
    # crossfade over a long one so the layer changes without a seam
    fade_s: float | None = None

    def audible_end_s(self) -> float:
        """Episode time at which this segment's content has been heard in full: its last
        word's end (speech with timings), its active span's end (sound events), else its end."""
        cut0 = self.clip_start_s
        avail = self.clip["duration_s"] - cut0
        dur = avail if self.clip_dur_s is None else min(self.clip_dur_s, avail)
        words = [w for w in (self.clip.get("words") or []) if w["start_s"] >= cut0 - 1e-6 and w["end_s"] - cut0 <= dur + 1e-6]
        if words and self.kind == "speech":
            return self.start_s + words[-1]["end_s"] - cut0
        a1 = self.clip.get("active_end_s", -1.0)
        if a1 is not None and a1 >= 0 and self.kind in ("sound", "music"):
            return self.start_s + min(dur, max(0.0, a1 - cut0))
        return self.start_s + dur


def background_bed(clip: dict, gain_db: float) -> SegmentPlan:
    """A noise bed under the whole episode: starts at 0, loops to the end (with crossfades)."""
    return SegmentPlan(clip=clip, start_s=0.0, kind="noise", role="background", gain_db=gain_db, loop_to_end=True)


def speech_end(clip: dict) -> float:
    """When the speech in a clip ends (clip time): the last word's end where timings exist,
    otherwise the end of the file (which may include trailing silence)."""
    words = clip.get("words") or []
    return words[-1]["end_s"] if words else clip["duration_s"]


def pick(rng: np.random.Generator, items: list):
    """One item, drawn with the episode's generator."""
    return items[int(rng.integers(len(items)))]


Evidence = Union[SegmentPlan, int]


@dataclass
class TurnPlan:
    trigger_s: float  # when the reply becomes due
    kind: str  # respond or stay_silent
    text: str = ""
    emotion: str = "normal"
    tool_call: str = ""
    # the audio this turn depends on (segments of the plan, or their indices) and when it has
    # been heard in full; None: the latest audible end of the evidence (the trigger if none)
    evidence: list[Evidence] = field(default_factory=list)
    evidence_s: float | None = None


@dataclass
class EpisodePlan:
    segments: list[SegmentPlan]
    turns: list[TurnPlan]
    language: str = ""
    system_prompt: str = ""
    min_duration_s: float = 0.0  # the renderer rounds up to whole chunks and past every segment/turn
    text_writer: str = ""
    tts: str = ""
    aligner: str = ""
    # how the renderer prepares and joins clips ({"tfjp": settings}: streamaudio.render.tfjp); set by
    # the build from the catalog, not by recipes. Empty: clips are mixed as they are.
    render: dict = field(default_factory=dict)

    def evidence_of(self, turn: TurnPlan) -> tuple[list[int], float]:
        """(segment indices, evidence_s) of a turn, with the default evidence_s filled in."""
        idx = []
        for e in turn.evidence:
            if isinstance(e, SegmentPlan):
                i = next((k for k, s in enumerate(self.segments) if s is e), None)
                if i is None:
                    raise PlanError("a turn's evidence names a segment that is not in the plan")
            else:
                i = int(e)
                if not 0 <= i < len(self.segments):
                    raise PlanError(f"a turn's evidence index {i} is out of range")
            idx.append(i)
        idx = sorted(set(idx))
        if turn.evidence_s is not None:
            ev = float(turn.evidence_s)
        elif idx:
            ev = max(self.segments[i].audible_end_s() for i in idx)
        else:
            ev = float(turn.trigger_s)
        return idx, ev


@dataclass
class PlanContext:
    episode_id: str
    subtask: str
    split: str
    rng: np.random.Generator
    pools: dict[str, Any]  # recipe pool name -> streamaudio.plan.pools.Pool
    tables: dict[str, Any]
    options: dict = field(default_factory=dict)
    chunk_s: float = CHUNK_S
