r"""One model sharded over processes or GPUs with torch.distributed (docs/theory.md §8, docs/architecture.md).

Neurons interact only through the readout f = s_o Σ_i c_i σ(h_i): in kernel space each process can hold a
contiguous block of the neurons (its rows of H and Z, m/P × n), one copy of G, and combine its partial sums of f
with one all-reduce of the n outputs per step (and of the n_test test outputs at logging steps). Everything else
(the residual, the loss, the divergence check, the history) is then computed from the same numbers on every
process, so the history is the same on every rank, and the run is the single-process run up to the order of
the sums.

Blocks follow the counter-based draws of :mod:`wideflow.neurons`: the drawn neurons are cut into P nearly equal
runs of whole chunks of :data:`~wideflow.neurons.CHUNK` neurons, and each process draws only its own (under the
NTK symmetrization, rows lo..hi of both halves, so pairs stay together). Any number of processes therefore trains
exactly the neurons of one process.

Launch: ``torchrun --nproc_per_node P script.py`` where the script calls
``wf.train(model, X, y, ..., distributed=True)`` (``examples/distributed_train.py``); the process group is
started from torchrun's environment if the script has not started it (gloo on the CPU, NCCL on CUDA). On GPUs
each process builds its model on its own GPU, ``device=f"cuda:{os.environ['LOCAL_RANK']}"``.
Checkpoints are one file per rank, ``PATH.rank{r}-of-{P}``, and resume with the same number of processes.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .engines import KernelEngine, Problem
from .errors import CheckpointError, InvalidArgument, WideflowError
from .io import json_digest
from .model import WideNet
from .neurons import CHUNK, drawn_neurons

__all__ = ["Shard", "ShardedKernelEngine", "shard_of", "check_same_everywhere", "agree_on_step", "DistributedMismatch",
           "DistributedFailure", "TIMEOUT"]

#: how long a collective waits for the other processes before it fails (a dead rank stops the others)
TIMEOUT = timedelta(seconds=60)


class DistributedMismatch(WideflowError, RuntimeError):
    """The processes of a sharded run were given different models, data or settings."""


class DistributedFailure(WideflowError, RuntimeError):
    """Another process of a sharded run stopped or cannot be reached."""


@dataclass(frozen=True)
class Shard:
    """This process's place in a sharded run: its rank of ``world`` and its block (lo, hi) of drawn neurons."""

    rank: int
    world: int
    neurons: tuple[int, int]

    def checkpoint_path(self, path: str | os.PathLike) -> str:
        """This rank's checkpoint file for the checkpoint ``path`` of the run."""
        return f"{os.fspath(path)}.rank{self.rank}-of-{self.world}"

    def check_no_other_layout(self, path: str | os.PathLike) -> None:
        """Raise :class:`~wideflow.errors.CheckpointError` when ``path`` has checkpoints written only by another
        number of processes: their blocks of neurons are not this run's, and starting afresh would pass over them
        silently."""
        pattern = glob.escape(os.fspath(path)) + ".rank*-of-*"
        worlds = sorted({int(m.group(1)) for name in glob.glob(pattern)
                         if (m := re.search(r"\.rank\d+-of-(\d+)(\.prev)?$", name))})
        if worlds and self.world not in worlds:
            raise CheckpointError(
                f"resume={os.fspath(path)!r} holds checkpoints of a run of {worlds[0]} processes, but this run has "
                f"{self.world}: resume with the same number of processes (torchrun --nproc_per_node {worlds[0]}); "
                "a checkpoint holds one block of neurons per process and cannot be re-split."
            )


def _process_group(device: torch.device) -> tuple[int, int]:
    if not dist.is_available():
        raise InvalidArgument("distributed=True needs torch.distributed, which this build of torch lacks.")
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise InvalidArgument(
                "distributed=True runs inside a process group: launch the script with torchrun "
                "(torchrun --nproc_per_node P script.py) or call torch.distributed.init_process_group first.")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
        # the group started here is ended here: a process that exits with a live gloo group aborts (SIGABRT)
        atexit.register(_end_process_group)
    if device.type == "cuda" and device.index is not None:
        # NCCL's object collectives (the fingerprint check) run on the current device: make it the model's
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size()


def _end_process_group() -> None:
    """End the group while the interpreter is fully alive: gloo's worker threads may hold work objects whose
    tensors, freed during finalization, abort the process (SIGABRT)."""
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):  # another process already gone: nothing left to end cleanly
            pass


def shard_of(model: WideNet, method: str) -> Shard:
    """This process's :class:`Shard` of ``model`` (the process group is started from torchrun's environment if
    needed); only the kernel engine trains a sharded model."""
    if method != "kernel":
        raise InvalidArgument(
            f"distributed=True shards the kernel-space engine; method={method!r} cannot run sharded "
            "(use method='kernel' or 'auto')."
        )
    rank, world = _process_group(model.device)
    count = drawn_neurons(model.m, model.scaling.symmetrize)
    chunks = -(-count // CHUNK)
    if world > chunks:
        raise InvalidArgument(
            f"{world} processes cannot share {count} drawn neurons: each needs at least one chunk of {CHUNK} "
            f"(m={model.m}); use at most {chunks} processes or a wider model."
        )
    first, last = rank * chunks // world, (rank + 1) * chunks // world
    return Shard(rank, world, (first * CHUNK, min(last * CHUNK, count)))


class ShardedKernelEngine(KernelEngine):
    """The kernel engine on this process's block of neurons; the partial outputs are summed over all processes.

    A process that stops (killed, out of memory) makes the collective fail on the others, at once when its
    connections close and after :data:`TIMEOUT` at the latest; they then stop with :class:`DistributedFailure`.
    """

    def reduce_outputs(self, f: torch.Tensor) -> torch.Tensor:
        try:
            dist.all_reduce(f, op=dist.ReduceOp.SUM)
        except (RuntimeError, dist.DistBackendError) as exc:
            raise DistributedFailure(
                f"rank {dist.get_rank()} of {dist.get_world_size()}: the sharded run lost another process (the "
                f"all-reduce of the outputs failed: {str(exc).splitlines()[0]}); restart all processes, with "
                "resume=PATH to continue from the last checkpoint."
            ) from None
        return f


def check_same_everywhere(settings: dict[str, Any], problem: Problem) -> None:
    """Compare the fingerprint of the run (model configuration, data, settings) across all processes, and raise
    :class:`DistributedMismatch` on every process, naming what differs, if they were not given the same run."""
    parts = {key: settings[key] for key in sorted(settings)}
    parts["G"] = _digest(problem.G) if problem.G is not None else None
    digests = {key: json_digest(value) for key, value in parts.items()}
    everyone: list[dict[str, str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, digests)
    differ = sorted({key for d in everyone if d is not None for key in d if d.get(key) != digests.get(key)})
    if differ:
        raise DistributedMismatch(
            f"the {len(everyone)} processes of this sharded run were given different runs (rank "
            f"{dist.get_rank()}): {', '.join(differ)} differ; start every process with the same model, data and "
            "training arguments."
        )


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def agree_on_step(steps: list[int]) -> int:
    """The latest step of which every process has a checkpoint: each offers the steps it has (its latest and the
    one before, :func:`wideflow.training.checkpoint.save_checkpoint` keeps both), and all take the largest common
    one. A process killed between two ranks' writes thus resumes with the others at the same step."""
    everyone: list[list[int] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, sorted(steps))
    common = set(everyone[0] or [])
    for offered in everyone[1:]:
        common &= set(offered or [])
    if not common:
        raise DistributedMismatch(
            f"the processes of this sharded run have no checkpoint step in common ({everyone}); start afresh "
            "without resume, or resume with the same number of processes as the run that wrote them.")
    return max(common)
