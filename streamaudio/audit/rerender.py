"""`streamaudio rerender OUT --id ID`: render an episode again from its stored plan
(OUT.work/plans) and the source clips, and compare it with the shard, byte for byte.

Proves a dataset is reproducible from its plans, and lets anyone audit one
episode (listen to it, change a gain in the plan and hear the difference)
without planning again.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..build.builder import work_dir
from ..build.shards import episode_row
from ..plan.store import plan_sha

EPISODE_ID = re.compile(r"^(?P<subtask>[a-z0-9_]+)-(?P<split>train|validation|test)-(?P<n>\d+)$")


class RerenderError(ValueError):
    pass


@dataclass
class Rerendered:
    id: str
    identical: bool
    differences: list[str] = field(default_factory=list)
    row: dict | None = None  # the new row
    flac: bytes = b""


def _find(root: Path, subtask: str, split: str, eid: str, what: str):
    for f in sorted((root / subtask).glob(f"{split}-*.parquet")):
        t = pq.read_table(f, filters=pc.field("id") == eid)
        if t.num_rows:
            return t.to_pylist()[0]
    raise RerenderError(f"{eid}: not found in any {what} under {root / subtask}")


def rerender(out: str | Path, episode_id: str) -> Rerendered:
    out = Path(out)
    m = EPISODE_ID.match(episode_id)
    if not m:
        raise RerenderError(f"{episode_id!r} is not an episode id (<subtask>-<split>-<number>)")
    st, split = m.group("subtask"), m.group("split")
    old = _find(out / "data", st, split, episode_id, "shard")
    stored = _find(work_dir(out.resolve()) / "plans", st, split, episode_id, "plan file (OUT.work/plans)")
    plan = json.loads(stored["plan"])
    if plan_sha(plan) != stored["plan_sha"] or stored["plan_sha"] != old["provenance"]["plan_sha"]:
        raise RerenderError(f"{episode_id}: the stored plan's sha256 does not match the episode's provenance.plan_sha")
    prov = old["provenance"]
    new = episode_row(plan, episode_id=episode_id, subtask=st, ability=old["ability"],
                      split=split, recipe_version=prov["recipe_version"], seed=prov["seed"], chunk_s=old["chunk_s"])
    diffs = []
    for k in sorted(set(old) | set(new)):
        if k == "provenance":
            diffs += [f"provenance.{p}" for p in sorted(set(old[k]) | set(new[k]))
                      if p != "toolkit_version" and old[k].get(p) != new[k].get(p)]
        elif old.get(k) != new.get(k):
            diffs.append(k)
    return Rerendered(id=episode_id, identical=not diffs, differences=diffs, row=new, flac=new["audio"]["bytes"])
