"""Run a sweep on Dask distributed: an embedded LocalCluster by default, or an existing cluster.

The driver (the process calling :func:`run_sweep`) plans the missing runs into tasks (batches of
compatible small runs, see :mod:`wideflow.sweep.batched`), submits them, and writes each result to the
store as it arrives. Workers only compute; they never touch the store, so they need no shared file
system and a task that runs twice (its first worker died) cannot write twice.

Fault tolerance:

- a run that raises is a failed run (reported with its error and configuration); the others go on;
- a worker that dies has its task re-run on another worker by the scheduler, up to ``retries`` deaths;
- if the driver dies, every run already written stays; running :func:`run_sweep` again with the same
  store runs only what is missing;
- two drivers started on one store share it: each computes only the runs it has claimed (:mod:`.claims`), and
  waits for and reads the runs the other holds, so every run is computed once and written by one driver;
- a store that cannot be written (a read-only or full disk) is an :class:`~wideflow.errors.OutputError` naming
  it: before any run starts when the claims cannot be made, otherwise at the first failed write, with every
  finished run kept.

Threads: a worker runs one task at a time and torch uses ``torch_threads`` threads in it. The embedded
LocalCluster takes ``n_workers`` processes (default: one per core, at most one per run) and gives each
``cores // n_workers`` torch threads, so that Dask and torch together never use more threads than cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .._tensor import resolve_device
from ..errors import InvalidArgument, InvalidType, OutputError, WideflowError, check_positive_int
from ..io import to_json
from .batched import MAX_BATCH, plan, run_group
from .claims import Claims, modified_since
from .config import normalize, run_id
from .runner import Outcome, failed_outcome
from .store import Store

__all__ = ["run_sweep", "available_cores", "CLAIM_POLL_S"]

#: Seconds between two looks at the runs another driver holds (:mod:`.claims`).
CLAIM_POLL_S = 0.5


def available_cores() -> int:
    """The number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(
    configs: Sequence[Mapping[str, Any]],
    store: str | os.PathLike,
    *,
    scheduler: Any = None,
    n_workers: int | None = None,
    torch_threads: int | None = None,
    progress: bool = True,
    batch: bool | int = True,
    retries: int = 3,
) -> pd.DataFrame:
    """Run every configuration missing from ``store`` on Dask and return the results table of all of them.

    Parameters
    ----------
    configs: run configurations (see :func:`wideflow.sweep.normalize`), e.g. from :func:`~wideflow.sweep.expand`.
    store: the results store folder (created if needed; see :mod:`wideflow.sweep.store`).
    scheduler: ``None`` for an embedded LocalCluster; the address of a running scheduler
        (``"tcp://host:8786"``); or a ``distributed.Client``.
    n_workers: worker processes of the embedded LocalCluster (default: one per core, at most one per run).
    torch_threads: torch threads per task; default ``cores // n_workers`` on the LocalCluster, and on an
        existing cluster the cores of each host divided by the Dask threads of all its workers.
    progress: a progress bar over runs (with ETA) on standard error, and a line per failed run.
    batch: train compatible small runs together (:mod:`~wideflow.sweep.batched`): ``True`` (batches of at
        most 32 runs), ``False``, or the largest batch size.
    retries: how many times a task whose worker died (or that raised outside a run) is started again.

    Returns one row per configuration, in order: run_id, status ("ok" or "failed"), error, the flattened
    configuration and the metrics (see :func:`wideflow.sweep.load_results`). Runs finished before (this
    call, an interrupted one or another driver's) are read from the store, not run again; a configuration
    listed twice is run once and has two rows. ``table.attrs["computed"]`` is how many runs this call computed.

    Every configuration is checked before any cluster starts (:func:`~wideflow.sweep.normalize`: values,
    m even under NTK, device names), and the device of every missing run is checked where the runs will
    execute: on this machine for the embedded LocalCluster, on every worker of an existing cluster, so that a
    device that does not exist (``cuda:9``) is one error instead of a failure of each run.
    """
    normalized = []
    for i, config in enumerate(configs):
        try:
            normalized.append(normalize(config))
        except (InvalidArgument, InvalidType) as exc:
            raise type(exc)(f"configs[{i}]: {exc}") from None
    ids = [run_id(c) for c in normalized]
    max_batch = _max_batch(batch)
    retries = check_positive_int("retries", retries, minimum=0)
    if scheduler is not None and n_workers is not None:
        raise InvalidArgument("n_workers only sizes the embedded LocalCluster; it cannot be given with scheduler.")
    t0 = time.time()
    st = Store(store)
    unique = dict(zip(ids, normalized, strict=True))  # a run listed twice runs once
    first = {rid: i for i, rid in reversed(list(enumerate(ids)))}
    missing_ids = [rid for rid in unique if not st.finished(rid)]
    missing = [unique[rid] for rid in missing_ids]
    devices: dict[str, str] = {}  # each device of a missing run -> the first configuration naming it
    for rid in missing_ids:
        devices.setdefault(unique[rid]["train"]["device"], f"configs[{first[rid]}]")
    if scheduler is None:  # the embedded LocalCluster runs here: check before starting it
        for device, message in _device_problems(list(devices)).items():
            raise InvalidArgument(f"{devices[device]}: {message}")
    computed = 0
    if missing:
        Claims(st.path).probe()  # a read-only store fails here, before a cluster starts
        computed = _execute(missing, st, scheduler=scheduler, n_workers=n_workers, torch_threads=torch_threads,
                            progress=progress, max_batch=max_batch, retries=retries, total=len(unique),
                            devices=devices, t0=t0)
    table = st.table(ids)
    table.attrs["computed"] = computed
    return table


def _max_batch(batch: bool | int) -> int:
    if batch is True:
        return MAX_BATCH
    if batch is False:
        return 1
    return check_positive_int("batch", batch)


def _execute(configs: list[dict[str, Any]], store: Store, *, scheduler: Any, n_workers: int | None,
             torch_threads: int | None, progress: bool, max_batch: int, retries: int, total: int,
             devices: dict[str, str], t0: float) -> int:
    """Compute the runs ``configs`` that no other driver holds (:mod:`.claims`) and wait for those it does;
    returns how many runs this driver computed. ``t0``: when the sweep began (a failure another driver recorded
    since then is that run's result)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(configs), desc="sweep", unit="run", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    tally = {"failed": 0, "computed": 0, "elsewhere": 0}
    pending = list(configs)
    try:
        with _client(scheduler, n_workers, torch_threads, len(configs), retries) as (client, slots, threads), \
                Claims(store.path) as claims:
            if scheduler is not None:
                _check_workers(client, devices)
            while pending:
                others = _compute(client, pending, store, claims, bar, tally, slots=slots, threads=threads,
                                  max_batch=max_batch, retries=retries, progress=progress, t0=t0)
                pending = []
                for config in others:
                    if _settled(store, run_id(config), t0):
                        tally["elsewhere"] += 1
                        bar.update(1)
                    else:
                        pending.append(config)
                if pending:
                    bar.set_postfix(waiting_for_another_driver=len(pending), refresh=True)
                    time.sleep(CLAIM_POLL_S)
    except KeyboardInterrupt:
        if progress:
            bar.write(f"wideflow: sweep interrupted; {bar.n} of {total} runs are done (finished or failed) in "
                      f"{store.path}, and running the same sweep again runs only the rest.", file=sys.stderr)
        raise
    finally:
        bar.close()
    return tally["computed"]


def _compute(client: Any, configs: list[dict[str, Any]], store: Store, claims: Claims, bar: Any,
             tally: dict[str, int], *, slots: int, threads: int | dict[str, int], max_batch: int, retries: int,
             progress: bool, t0: float) -> list[dict[str, Any]]:
    """Train the runs of ``configs`` that this driver can claim, task by task in the order of
    :func:`~wideflow.sweep.batched.plan` with at most two tasks per slot in flight: each task's runs are claimed
    just before it is submitted, each outcome is written as it arrives and its claim released. Returns the
    runs it left to other drivers (held by one, or written by one since ``t0``)."""
    from distributed import as_completed

    plan_ = iter(plan(configs, max_batch=max_batch, slots=slots))
    token = uuid.uuid4().hex[:8]
    futures: dict[Any, list[dict[str, Any]]] = {}
    others: list[dict[str, Any]] = []
    done = as_completed()

    def submit_next() -> None:
        for task in plan_:
            mine = []
            for config in (configs[i] for i in task):
                rid = run_id(config)
                if claims.take(rid) and not _settled(store, rid, t0):
                    mine.append(config)
                else:
                    claims.release(rid)  # held elsewhere, or written by the driver that held it until now
                    others.append(config)
            if mine:
                future = client.submit(_run_task, mine, threads, key=f"wideflow-run-{run_id(mine[0])}-{token}",
                                       pure=False, retries=retries)
                futures[future] = mine
                done.add(future)
                return

    try:
        for _ in range(2 * slots):
            submit_next()
        for future in done:
            for outcome in _outcomes(future, futures.pop(future)):
                try:
                    store.write(outcome)
                except OutputError as exc:
                    kept = sum(store.finished(rid) for rid in store.run_ids())
                    raise OutputError(f"the sweep stopped: {exc} The {kept} finished runs in {str(store.path)!r} "
                                      "are kept; free space or give a writable store, and running the same sweep "
                                      "again runs only the rest.") from None
                claims.release(outcome.run_id)
                tally["computed"] += 1
                if not outcome.ok:
                    tally["failed"] += 1
                    if progress:
                        bar.write(_failure_line(outcome), file=sys.stderr)
                bar.update(1)
            bar.set_postfix(failed=tally["failed"], elsewhere=tally["elsewhere"], refresh=False)
            future.release()
            submit_next()
    except BaseException:
        client.cancel(list(futures))
        raise
    return others


def _settled(store: Store, rid: str, t0: float) -> bool:
    """Whether run ``rid`` needs no computing by this driver: finished, or failed since ``t0``."""
    return store.finished(rid) or modified_since(store.folder(rid) / "error.json", t0)


def _device_problems(devices: list[str]) -> dict[str, str]:
    """The error message of each device in ``devices`` that does not exist on this machine (run on the
    driver for the embedded LocalCluster, on each worker of an existing cluster)."""
    problems = {}
    for device in devices:
        try:
            resolve_device(device, "train.device")
        except WideflowError as exc:
            problems[device] = str(exc)
    return problems


def _check_workers(client: Any, devices: dict[str, str]) -> None:
    """Refuse the sweep if a worker of an existing cluster lacks a device that runs ask for (``devices``
    maps each device to the first configuration naming it): any worker may be handed any run."""
    for worker, problems in sorted(client.run(_device_problems, list(devices)).items()):
        for device, message in problems.items():
            raise InvalidArgument(f"{devices[device]}: on worker {worker}, {message}")


def _outcomes(future: Any, task: list[dict[str, Any]]) -> list[Outcome]:
    """The outcomes a task returned, or a failure of each of its runs if the task itself failed (its
    worker died more than ``retries`` times, say)."""
    try:
        return future.result()
    except Exception as exc:  # the task, not a run, failed: every run of it is reported with the error
        return [failed_outcome(run_id(c), c, exc, batch_size=len(task)) for c in task]


def _failure_line(outcome: Outcome) -> str:
    return (f"wideflow: run {outcome.run_id} failed: {outcome.error}\n"
            f"  config: {to_json(outcome.config, indent=None, sort_keys=True)}")


def _run_task(configs: list[dict[str, Any]], torch_threads: int | dict[str, int]) -> list[Outcome]:
    """What a worker runs: one task of :func:`~wideflow.sweep.batched.plan`, with torch's threads set.

    ``torch_threads`` is a number, or a map from worker address to number (a worker started after the
    map was made, e.g. in place of one that died, takes 1)."""
    if isinstance(torch_threads, dict):
        from distributed import get_worker

        torch_threads = torch_threads.get(get_worker().address, 1)
    torch.set_num_threads(torch_threads)
    return run_group(configs)


def _threads_per_worker(client: Any) -> dict[str, int]:
    """Torch threads for the tasks of each worker of an existing cluster: the cores of its host shared
    among all the Dask threads of the workers on that host, so that no host is oversubscribed."""
    from distributed.comm import get_address_host

    cores = client.run(available_cores)
    nthreads = client.nthreads()
    per_host: dict[str, int] = {}
    for addr, k in nthreads.items():
        per_host[get_address_host(addr)] = per_host.get(get_address_host(addr), 0) + k
    return {addr: max(1, cores[addr] // per_host[get_address_host(addr)]) for addr in nthreads if addr in cores}


@contextlib.contextmanager
def _client(scheduler: Any, n_workers: int | None, torch_threads: int | None, n_runs: int,
            retries: int) -> Iterator[tuple[Any, int, int | dict[str, int]]]:
    """(client, number of task slots, torch threads per task) for the chosen cluster."""
    import dask
    from distributed import Client, LocalCluster

    if torch_threads is not None:
        torch_threads = check_positive_int("torch_threads", torch_threads)
    if isinstance(scheduler, Client):
        yield scheduler, max(1, sum(scheduler.nthreads().values())), torch_threads or _threads_per_worker(scheduler)
        return
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise InvalidType(f"scheduler must be an address such as 'tcp://host:8786' or a Client; got {scheduler!r}.")
        with Client(scheduler) as client:
            yield client, max(1, sum(client.nthreads().values())), torch_threads or _threads_per_worker(client)
        return
    cores = available_cores()
    workers = check_positive_int("n_workers", n_workers) if n_workers is not None else min(cores, n_runs)
    threads = torch_threads or max(1, cores // workers)
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        # ":0": the scheduler's HTTP server (health, dashboard) on a free port, never a clash with a running one
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client, workers, threads
