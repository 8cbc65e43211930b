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
            _start_private_ray(ray, num_cpus, kw)
    return ray


def _start_private_ray(ray, num_cpus: int | None, init_kw: dict) -> None:
    """A local Ray for this process alone, as ``ray.init(address="local")`` starts one but
    without the autoscaler monitor and the log monitor: a single node never scales, and
    log_to_driver is off, so neither has anything to do, yet the two cost ~0.9 s of CPU per
    build (python monitor.py and log_monitor.py; benchmarks/bench_build.py). ray.init has no
    argument for them (`ray start` has --no-monitor and --include-log-monitor), so the head
    node is started as ray.init starts it, with those two RayParams set, and this driver
    joins it. Ray's own shutdown (ray.shutdown(), its atexit hook) then stops it as it
    would stop ray.init's node, and it fate-shares with this process as ray.init's does
    (spawn_reaper=True, the same argument). Ray internals that move fall back to plain
    ray.init."""
    try:
        from ray._private import worker as ray_worker
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        params = RayParams(num_cpus=num_cpus, include_dashboard=False, include_log_monitor=False, no_monitor=True)
    except (ImportError, TypeError) as exc:
        logging.getLogger("streamaudio").debug("private Ray without monitors unavailable (%s); using ray.init", exc)
        ray.init(address="local", num_cpus=num_cpus, **init_kw)
        return
    try:
        node = Node(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)
    except TypeError as exc:  # Node's signature moved in this Ray version
        logging.getLogger("streamaudio").debug("private Ray without monitors unavailable (%s); using ray.init", exc)
        ray.init(address="local", num_cpus=num_cpus, **init_kw)
        return
    try:
        ray.init(address=node.address, **init_kw)
    except BaseException:
        node.kill_all_processes(check_alive=False, allow_graceful=False)
        raise
    # ray.init(address=...) holds a connect-only node, which stops nothing at shutdown; this
    # one stops the processes started above (what ray.init(address="local") keeps here)
    ray_worker._global_node = node


def run_shard_task(task: dict, tables: dict, *pool_data) -> dict:
    """One shard of a build, as a Ray task (``Builder._run_tasks``): its summary, plus the
    node it ran on (not written to the summary file)."""
    import ray

    from .build.shards import ShardTask, run_shard

    t = ShardTask(**task)
    summary = run_shard(t, tables, dict(zip(sorted(t.pools), pool_data)))
    return {**summary, "node": ray.get_runtime_context().get_node_id()[:12]}


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
