"""Noise tracks: two layers of noise under the whole stream, independent of the clips.

The paper lays a background layer (-6 dB) and an environment layer (-12 dB, relative to the
foreground at 0 dB) under every stream, each made of noise clips joined by long crossfades and
changing over the episode. The floor then never starts or stops with a clip, so where a clip
begins or ends is not audible in the quiet around it. Shared code adds them to every plan after
the recipe has planned (recipes never see them); draws use their own generator, so a recipe's
plan is the same with or without the tracks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .types import EpisodePlan, SegmentPlan

# the reserved pool the build hands to shards when a catalog asks for noise tracks
TRACK_POOL = "_noise_tracks"


@dataclass(frozen=True)
class NoiseTrackSettings:
    sources: tuple[str, ...] = ()
    background_db: float = -6.0
    environment_db: float = -12.0
    crossfade_s: float = 1.0
    min_piece_s: float = 6.0  # a layer changes clip no faster than this
    max_piece_s: float = 20.0

    @classmethod
    def from_dict(cls, d: dict | None) -> "NoiseTrackSettings | None":
        if not d:
            return None
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown noise_tracks settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{**d, "sources": tuple(d.get("sources", ()))})

    def to_dict(self) -> dict:
        return {**asdict(self), "sources": list(self.sources)}


def planned_length_s(plan: EpisodePlan) -> float:
    """How long the stream will be, as far as the plan says (the renderer rounds up to whole
    chunks and may lengthen it a little when a reply waits for an utterance's tail)."""
    ends = [plan.min_duration_s, *(t.trigger_s for t in plan.turns)]
    for s in plan.segments:
        if not s.loop_to_end:
            avail = s.clip["duration_s"] - s.clip_start_s
            ends.append(s.start_s + (avail if s.clip_dur_s is None else min(s.clip_dur_s, avail)))
    return max(ends)


def add_noise_tracks(plan: EpisodePlan, pool, rng: np.random.Generator, settings: NoiseTrackSettings) -> None:
    """Two layers (background, environment) of noise clips from ``pool`` under the whole plan,
    each piece crossfading into the next; the last piece of a layer loops to the stream's end."""
    length = planned_length_s(plan)
    for name, gain in (("background", settings.background_db), ("environment", settings.environment_db)):
        t, k = 0.0, 0
        while True:
            clip = pool.choice(rng, where=lambda r: r["duration_s"] >= 1.0)
            piece = min(float(rng.uniform(settings.min_piece_s, settings.max_piece_s)), clip["duration_s"])
            start_in = float(rng.uniform(0.0, clip["duration_s"] - piece))
            last = t + piece >= length - 1e-6
            xfade = min(settings.crossfade_s, piece / 3)  # a short clip still moves the layer on
            seg = SegmentPlan(clip=clip, start_s=round(t, 4), kind="noise", role="background", gain_db=gain,
                              clip_start_s=round(start_in, 4), attrs={"track": name, "piece": k},
                              fade_s=round(xfade, 4))
            if last:
                seg.loop_to_end = True
            else:
                seg.clip_dur_s = round(piece, 4)
            plan.segments.append(seg)
            if last:
                break
            t += piece - xfade
            k += 1
