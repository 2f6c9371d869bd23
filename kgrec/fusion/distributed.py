"""Data-parallel training over ``torch.distributed``: process groups, the collectives training uses, launchers.

``kgrec train --workers N`` starts N training processes with :func:`launch` (``torch.multiprocessing.spawn``, a
process group on a free local port); ``torchrun --nproc-per-node N -m kgrec train …`` starts them itself and each
joins through :func:`run_from_environment` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Backend:
gloo on the CPU, nccl when the device is a GPU (:func:`backend_for`).

Inside a process group of more than one rank, :mod:`kgrec.fusion.train` is data-parallel over interactions: every
rank builds the same full graph inputs and computes the full-graph forward, takes its shard of each step's batch
(:func:`rank_batches`), weights its loss by its shard's share of the step, and the gradients are summed over the
ranks (:func:`all_reduce_gradients`) before the same optimizer step on every rank, so the weights stay identical
(:func:`gather_checksums` checks it at the end; nothing copies weights between ranks after the start,
:func:`broadcast_module`). Rank 0 alone validates; its score goes to every rank (:func:`broadcast_float`), whose
early stopping then keeps the same best weights and stops at the same epoch. What is split, what is replicated and
what that costs: docs/scale.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from kgrec.errors import KgrecError

__all__ = [
    "Rank",
    "all_reduce_gradients",
    "all_reduce_sum",
    "backend_for",
    "barrier",
    "broadcast_float",
    "broadcast_module",
    "from_environment",
    "gather_checksums",
    "launch",
    "rank_batches",
    "run_from_environment",
    "state_checksum",
    "threads_per_worker",
    "world",
]


@dataclass(frozen=True)
class Rank:
    """This process's place in the training group."""

    rank: int
    workers: int
    backend: str
    launcher: str  # "spawn" (kgrec train --workers) or "torchrun"
    threads: int

    @property
    def main(self) -> bool:
        return self.rank == 0


# ------------------------------------------------------------------ the group training sees
def world() -> tuple[int, int] | None:
    """``(rank, world size)`` of the active process group when it has more than one rank, else None."""
    if not dist.is_available() or not dist.is_initialized():
        return None
    size = dist.get_world_size()
    return (dist.get_rank(), size) if size > 1 else None


def rank_batches(perm: np.ndarray, batch_size: int, rank: int, workers: int) -> list[tuple[np.ndarray, int]]:
    """This rank's shard of every step of an epoch over ``perm``, with the step's size over all ranks.

    A step takes the next ``batch_size * workers`` rows of ``perm`` and gives each rank an equal part (sizes differ
    by at most one), so every rank takes the same number of steps and all ranks' shards together use every row once.
    A last step too short to give every rank a row joins the step before it. With one worker the batches are
    ``perm[0:batch_size], perm[batch_size:2 batch_size], …``, as one process cuts them.

    Raises:
        KgrecError: fewer rows than workers.
    """
    n = len(perm)
    if workers > 1 and n < workers:
        raise KgrecError(f"cannot split {n} interactions over {workers} training processes; use at most {n} workers")
    step = batch_size * workers
    starts = list(range(0, n, step))
    if len(starts) > 1 and n - starts[-1] < workers:
        starts.pop()
    ends = [*starts[1:], n][: len(starts)]
    return [(np.array_split(perm[s:e], workers)[rank], e - s) for s, e in zip(starts, ends, strict=True)]


def all_reduce_gradients(module: torch.nn.Module) -> None:
    """Sum every parameter's gradient over the ranks, in one flat all_reduce (gradients the ranks weighted)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    at = 0
    for g in grads:
        g.copy_(flat[at : at + g.numel()].view_as(g))
        at += g.numel()


def all_reduce_sum(x: float) -> float:
    """``x`` summed over the ranks."""
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def broadcast_float(x: float) -> float:
    """Rank 0's ``x`` on every rank (its validation score, from which every rank takes the same stopping decision)."""
    t = torch.tensor([x], dtype=torch.float64)
    dist.broadcast(t, src=0)
    return float(t.item())


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers into ``module`` on every rank."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def barrier() -> None:
    dist.barrier()


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a state_dict's tensors (in key order)."""
    h = hashlib.sha256()
    for name, t in state.items():
        a = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(a.shape)}:{a.dtype};".encode())
        h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def gather_checksums(state: dict[str, torch.Tensor]) -> list[str]:
    """Every rank's :func:`state_checksum` of ``state``, in rank order (on every rank)."""
    mine = state_checksum(state)
    group = world()
    if group is None:
        return [mine]
    out: list[Any] = [None] * group[1]
    dist.all_gather_object(out, mine)
    return [str(c) for c in out]


# ------------------------------------------------------------------ starting the group
def backend_for(device: str = "cpu") -> str:
    """gloo for the CPU, nccl for a CUDA device (gloo when nccl is not built in)."""
    if device.startswith("cuda") and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def threads_per_worker(workers: int) -> int:
    """The cores this process may use, split evenly over the workers (at least one thread each)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(info: Rank, init_method: str) -> None:
    if not dist.is_available():
        raise KgrecError("this torch has no torch.distributed; train with one worker")
    torch.set_num_threads(info.threads)
    dist.init_process_group(info.backend, init_method=init_method, rank=info.rank, world_size=info.workers)


def _spawned(
    rank: int, fn: Callable[..., None], workers: int, port: int, backend: str, threads: int, args: Sequence[Any]
) -> None:
    """One process of :func:`launch` (module level: ``torch.multiprocessing.spawn`` pickles it by name)."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # every rank is on this machine
    info = Rank(rank, workers, backend, "spawn", threads)
    _join(info, f"tcp://127.0.0.1:{port}")
    try:
        fn(info, *args)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., None], workers: int, args: Sequence[Any] = (), device: str = "cpu") -> None:
    """Run ``fn(rank, *args)`` in ``workers`` new processes joined in one process group (``rank``: a :class:`Rank`);
    returns when all have finished. ``fn`` and ``args`` must pickle (``fn`` a module-level function).

    Raises:
        KgrecError: a process failed (its error's last line, and which process).
    """
    import torch.multiprocessing as mp

    port = _free_port()
    threads = threads_per_worker(workers)
    try:
        mp.spawn(
            _spawned, args=(fn, workers, port, backend_for(device), threads, tuple(args)), nprocs=workers, join=True
        )
    except mp.ProcessRaisedException as e:
        lines = [x for x in str(e).splitlines() if x.strip()]
        last = re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1]) if lines else str(e)  # the message, not its type
        raise KgrecError(f"training process {e.error_index} of {workers} failed: {last}") from e
    except mp.ProcessExitedException as e:
        raise KgrecError(f"training process {e.error_index} of {workers} died: {e}") from e


def from_environment() -> Rank | None:
    """This process's :class:`Rank` when a launcher such as torchrun set ``WORLD_SIZE`` above 1, else None.

    Raises:
        KgrecError: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` or ``MASTER_PORT`` missing or not a number.
    """
    size = os.environ.get("WORLD_SIZE")
    if size is None:
        return None
    try:
        workers, rank = int(size), int(os.environ["RANK"])
        int(os.environ["MASTER_PORT"])
        os.environ["MASTER_ADDR"]
    except (KeyError, ValueError) as e:
        raise KgrecError(
            f"WORLD_SIZE={size} is set, so kgrec joins a torch.distributed group, but RANK, MASTER_ADDR and "
            f"MASTER_PORT must be set too (numbers for RANK and MASTER_PORT): {e!r}; start with torchrun"
        ) from e
    if workers <= 1:
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", workers))  # the ranks on this machine share its cores
    return Rank(rank, workers, backend_for(), "torchrun", threads_per_worker(local))


def run_from_environment(info: Rank, fn: Callable[..., None], args: Sequence[Any] = ()) -> None:
    """Join the group ``info`` describes (``env://``: torchrun's variables), run ``fn(info, *args)``, leave it."""
    _join(info, "env://")
    try:
        fn(info, *args)
    finally:
        dist.destroy_process_group()
