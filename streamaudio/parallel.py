"""Ray: starting or joining it, and row-wise stages on Ray Data actors (one expensive
model per actor, reused for every batch: aligners, recognisers)."""
from __future__ import annotations

import logging
import os
from typing import Callable

import pyarrow as pa


CONNECT_TIMEOUT_S = 10.0


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (forked synthesis)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class RayConnectError(RuntimeError):
    """The Ray cluster asked for cannot be reached (the message says where and what to do)."""


def _reachable(address: str) -> str:
    """The cluster's host:port, once a TCP connection to it succeeds within CONNECT_TIMEOUT_S.
    Ray itself retries a dead address for many minutes; a build should say so at once."""
    import socket

    from ray._private.services import canonicalize_bootstrap_address

    bare = address.split("://", 1)[1] if address.startswith("ray://") else address
    try:
        resolved = canonicalize_bootstrap_address(bare) if not address.startswith("ray://") else bare
    except (ConnectionError, ValueError) as exc:
        raise RayConnectError(f"no Ray cluster found for --ray-address {address!r} ({exc}). Start one with "
                              "`ray start --head`, or leave --ray-address out for a private local Ray") from None
    if resolved is None:
        raise RayConnectError(f"--ray-address {address!r} names no running cluster on this machine; start one with "
                              "`ray start --head`, or leave --ray-address out for a private local Ray")
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise RayConnectError(f"cannot reach the Ray cluster at {resolved} (from --ray-address {address!r}): "
                              f"{exc.strerror or exc}. Is it running? (`ray status --address {resolved}`)") from None
    return resolved


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at ``address`` ('auto': the one `ray start` made on this machine), or,
    by default, start a private local Ray: a build never joins a cluster it was not asked to
    (not the one the machine's last `ray start` recorded, not the one RAY_ADDRESS names)."""
    import ray

    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
        if address and address != "local":
            _reachable(address)
            ray.init(address=address, **kw)  # as given: Ray picks this driver's node by it
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address="local", num_cpus=num_cpus, **kw)
    return ray


def map_rows_with_actors(rows: pa.Table, worker_cls, ctor_kwargs: dict, result_schema: pa.Schema, *,
                         batch_size: int, actors: int | None = None, gpus_per_actor: float = 0.0,
                         on_batch: Callable[[pa.Table], None] | None = None) -> float:
    """Run ``worker_cls(**ctor_kwargs)(batch) -> pa.Table`` over ``rows`` on a pool of Ray
    actors (one model per actor, loaded once); ``on_batch`` receives each result table as it
    completes (in any order). Returns the CPU seconds the actors spent. Plain actors, not Ray Data: its coordinator and stats actors
    cost about 3 s of CPU per build for what a queue of batches does here."""
    import ray
    from ray.util import ActorPool

    if rows.num_rows == 0:
        return 0.0
    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    batches = [rows.slice(i, batch_size) for i in range(0, rows.num_rows, batch_size)]
    n_actors = actors or (1 if gpus_per_actor else max(1, min(cpus, len(batches))))
    res = {"num_gpus": gpus_per_actor, "num_cpus": 0} if gpus_per_actor else {"num_cpus": 1}
    actor_cls = ray.remote(**res)(_BatchActor)
    workers = [actor_cls.remote(worker_cls, ctor_kwargs) for _ in range(n_actors)]
    spent = 0.0
    try:
        for out, cpu in ActorPool(workers).map_unordered(lambda a, b: a.run.remote(b), batches):
            spent += cpu
            if on_batch is not None:
                on_batch(out.cast(result_schema))
        spent += sum(ray.get([a.setup_cpu.remote() for a in workers]))
    finally:
        for a in workers:  # the models go with their actors: their CPUs (or GPUs) are free again
            ray.kill(a)
    return spent


class _BatchActor:
    """Holds one worker (an aligner, a recogniser) for the actor's life."""

    def __init__(self, worker_cls, ctor_kwargs: dict):
        c0 = cpu_seconds()
        self.worker = worker_cls(**ctor_kwargs)
        self._setup = cpu_seconds() - c0

    def setup_cpu(self) -> float:
        return self._setup

    def run(self, batch: pa.Table) -> tuple[pa.Table, float]:
        c0 = cpu_seconds()
        out = self.worker(batch)
        return out, cpu_seconds() - c0
