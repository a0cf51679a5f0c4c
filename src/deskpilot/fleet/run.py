"""``run_fleet``: many tasks over Ray desktop actors, one shared rate limit, task-level
retries, one output directory (or shared storage), resumable.

The driver keeps at most one attempt of each task running. When an attempt's actor, its
worker process or its node dies (:func:`~deskpilot.fleet.ray_support.actor_died_errors`),
a new actor (a fresh desktop) is started for that slot and the task is queued again from
scratch, up to ``max_retries`` more times, for whichever desktop is free first: a new
actor gets tasks only once it answers, so when a lost node leaves no room for its
replacement, the surviving desktops run the task and the replacement waits for room
(a slot whose actor fails to start 3 times running is given up). Only a finished attempt
writes a result line, so a task never counts twice. Results are appended to
``OUT/results.jsonl`` as they arrive; each run's trajectory directory is unpacked into
``OUT/runs/<task id>/`` (the actors send it back, so every node's runs end up in one
place), or, with ``shared_dir``, written by the actor straight to
``SHARED/<task id>/`` and only its path recorded.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .desktop_actor import DesktopActor, FleetSettings
from .limit import LimitConfig, shared_limiter
from .ray_support import NAMESPACE, actor_died_errors, import_ray
from .records import (
    RUNS_DIR,
    FleetResult,
    FleetTask,
    append_result,
    check_unique,
    read_results,
    run_dir_name,
)

log = logging.getLogger("deskpilot.fleet")

ProgressFn = Callable[[FleetResult], None]


def _as_task(t: FleetTask | Mapping[str, Any]) -> FleetTask:
    return t if isinstance(t, FleetTask) else FleetTask.model_validate(dict(t))


def _unpack(archive: bytes, runs: Path, name: str) -> str | None:
    """Unpack a run archive into ``runs/<name>`` (replacing an older attempt's); returns
    the path relative to the output directory, or None when the archive is unusable."""
    target = runs / name
    if target.exists():
        shutil.rmtree(target)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[0] == name]
            tar.extractall(runs, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        log.warning("The trajectory of %s could not be unpacked: %s", name, exc)
        return None
    return f"{RUNS_DIR}/{name}" if target.is_dir() else None


def _end_limiter(ray: Any, first: Any, settings: FleetSettings) -> None:
    """Kill the limiter actor this run started, and the one a process revived in its place
    (detached, so it would outlive the run)."""
    handles = [first]
    try:
        handles.append(ray.get_actor(settings.limiter_name, namespace=settings.namespace))
    except ValueError:
        pass  # dead and not revived
    for handle in handles:
        try:
            ray.kill(handle, no_restart=True)
        except Exception as exc:  # already gone
            log.debug("kill of the limiter actor: %s", exc)


_START_TRIES = 3
"""Failed starts in a row after which a desktop slot is given up."""

_QUIET_WARN_S = 60.0
"""Seconds without any answer from the cluster before the driver says what it waits for."""


def check_shared_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as an absolute directory the fleet can write its runs to (checked on the
    driver's node; each actor checks it again on its own).

    Raises:
        ConfigError: it does not exist, is not a directory, or cannot be written.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(
            f"The shared directory {p} does not exist; create it on storage that every node "
            "mounts at the same path (NFS, a cluster file system) and pass that path."
        )
    if not p.is_dir():
        raise ConfigError(f"The shared directory {p} is a file, not a directory.")
    p = p.resolve()
    try:
        fd, probe = tempfile.mkstemp(prefix=".deskpilot-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"The shared directory {p} is not writable ({exc.strerror or exc}); pass a "
            "directory this user can create files in."
        ) from exc
    return p


def _check_resources(resources: Mapping[str, float]) -> dict[str, float]:
    """``desktop_resources`` as a plain dict, checked.

    Raises:
        ConfigError: an empty name, ``CPU``/``GPU`` (use ``desktop_cpus``), or an amount
            that is not a positive number.
    """
    out: dict[str, float] = {}
    for name, amount in resources.items():
        if not name or name in ("CPU", "GPU"):
            raise ConfigError(
                f"A desktop resource needs a custom name, not {name!r} (CPUs are "
                "desktop_cpus / --desktop-cpus)."
            )
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
            raise ConfigError(f"Desktop resource {name!r} needs an amount > 0, not {amount!r}.")
        out[name] = float(amount)
    return out


class _Fleet:
    """The desktop actors of one run, by slot: start, wait until up, replace, close."""

    def __init__(
        self, ray: Any, settings: FleetSettings, shape: tuple[float, dict[str, float]], tag: str
    ) -> None:
        self._ray = ray
        self._settings = settings
        self._num_cpus, self._resources = shape
        self._tag = tag
        self._made = 0
        self.actors: dict[int, tuple[str, Any]] = {}
        self.starting: dict[Any, int] = {}  # the `node` call of an actor not up yet -> slot
        self.failed_starts: dict[int, int] = {}
        self.last_error = ""

    def start(self, slot: int) -> None:
        name = f"deskpilot-desktop-{self._tag}-{self._made}"
        self._made += 1
        servers = self._settings.servers
        server = servers[slot] if servers else None  # a replacement drives the same one
        handle = (
            self._ray.remote(DesktopActor)
            .options(
                name=name,
                namespace=NAMESPACE,
                num_cpus=self._num_cpus,
                resources=self._resources,
                max_restarts=0,
                max_concurrency=4,  # run_task plus node/current_task/close calls
            )
            .remote(self._settings, name, server)
        )
        self.actors[slot] = (name, handle)
        self.starting[handle.node.remote()] = slot

    def _kill(self, slot: int) -> None:
        _, old = self.actors.pop(slot)
        try:
            self._ray.kill(old, no_restart=True)
        except Exception as exc:  # already gone
            log.debug("kill of a dead desktop actor: %s", exc)

    def replace(self, slot: int) -> None:
        self._kill(slot)
        self.start(slot)

    def up(self, ref: Any) -> int | None:
        """The slot whose start ``ref`` answers, when its actor is up; None when it failed
        to start (it is started again, or given up after :data:`_START_TRIES`)."""
        slot = self.starting.pop(ref)
        try:
            self._ray.get(ref)
        except Exception as exc:  # its creation failed, or its worker or node died
            self.last_error = f"{type(exc).__name__}: {exc}".split("\n")[0]
            n = self.failed_starts[slot] = self.failed_starts.get(slot, 0) + 1
            log.warning(
                "Desktop actor %s did not start (%s)", self.actors[slot][0], self.last_error
            )
            if n < _START_TRIES:
                self.replace(slot)
            else:
                self._kill(slot)
            return None
        self.failed_starts[slot] = 0
        return slot

    def close(self) -> None:
        ray = self._ray
        waiting = set(self.starting.values())
        refs = [h.close.remote() for s, (_, h) in self.actors.items() if s not in waiting]
        try:
            if refs:
                ray.wait(refs, num_returns=len(refs), timeout=30)
        except Exception as exc:
            log.debug("closing desktop actors: %s", exc)
        for _, h in self.actors.values():
            try:
                ray.kill(h, no_restart=True)
            except Exception as exc:
                log.debug("kill of a desktop actor: %s", exc)


def run_fleet(
    tasks: Iterable[FleetTask | Mapping[str, Any]],
    *,
    settings: FleetSettings | None = None,
    desktops: int = 2,
    out_dir: str | Path = "deskpilot-fleet",
    shared_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    limits: LimitConfig | None = None,
    desktop_cpus: float = 1.0,
    desktop_resources: Mapping[str, float] | None = None,
    max_retries: int = 2,
    address: str | None = None,
    show_progress: bool = True,
    on_result: ProgressFn | None = None,
) -> list[FleetResult]:
    """Run ``tasks`` over ``desktops`` Ray desktop actors; one :class:`FleetResult` per task.

    Args:
        tasks: :class:`FleetTask` objects or ``{"id", "task"}`` mappings (unique ids).
        settings: how each actor builds its client, desktop and agent (default
            :class:`FleetSettings()`); its ``limiter_name`` names the shared limiter.
        desktops: how many desktop actors (and so tasks) run at once (>= 1; at most
            ``len(settings.servers)`` when servers are given).
        out_dir: the output directory: ``results.jsonl`` and ``runs/<task id>/``.
        shared_dir: a directory every node mounts at the same path (NFS, a cluster file
            system): each actor writes its run directories straight to
            ``shared_dir/<task id>/`` and only the absolute path is sent back and recorded
            (``FleetResult.trajectory``); nothing is copied to ``out_dir/runs``. None:
            the actors send each run back packed and the driver unpacks it in ``out_dir``.
        resume: skip tasks that already have a line in ``out_dir/results.jsonl`` (their
            old result is returned); False starts the file over.
        limits: the fleet-wide budgets of the shared limiter actor (default
            :class:`LimitConfig()`); ignored when ``settings.limiter_name`` is None.
        desktop_cpus: Ray CPUs reserved per desktop actor (fractions allowed).
        desktop_resources: custom Ray resources each desktop actor needs, e.g.
            ``{"desktop": 1}`` to run desktops only on nodes started with ``ray start
            --resources '{"desktop": 4}'`` (at most 4 each there).
        max_retries: how many times a task is started again after its actor or node died.
        address: the Ray cluster (``"auto"``, ``ray://host:10001``); None starts a local
            Ray when none is connected. A Ray this call started is shut down at the end.
        show_progress: a tqdm bar on stderr (tasks done, ok, retries).
        on_result: called in the driver with each new result as it is written.

    Returns:
        results in the order of ``tasks`` (resumed ones included).

    Raises:
        ConfigError: ``desktops`` < 1 or more than the servers, negative ``max_retries``,
            duplicate task ids, a ``desktop_resources`` amount <= 0 or name ``CPU`` /
            ``GPU``, or a ``shared_dir`` that is missing, not a directory or not writable.
        MissingDependencyError: Ray is not installed.
    """
    if not isinstance(desktops, int) or desktops < 1:
        raise ConfigError(f"desktops must be an integer >= 1, not {desktops!r}.")
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, not {max_retries}.")
    if desktop_cpus < 0:
        raise ConfigError(f"desktop_cpus must be >= 0 CPUs, not {desktop_cpus}.")
    resources = _check_resources(desktop_resources or {})
    all_tasks = [_as_task(t) for t in tasks]
    check_unique(all_tasks)
    settings = settings or FleetSettings()
    if settings.servers and desktops > len(settings.servers):
        raise ConfigError(
            f"{desktops} desktops need {desktops} computer servers (one desktop each), but "
            f"{len(settings.servers)} were given; pass --desktops {len(settings.servers)} or "
            "more --server URLs."
        )
    shared = check_shared_dir(shared_dir) if shared_dir is not None else None
    out = Path(out_dir)
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    done: dict[str, FleetResult] = {}
    if resume:
        old = read_results(out)
        done = {t.id: old[t.id] for t in all_tasks if t.id in old}
    else:
        (out / "results.jsonl").unlink(missing_ok=True)
    todo = [t for t in all_tasks if t.id not in done]

    ray = import_ray()
    started_ray = False
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, include_dashboard=False)
        started_ray = True
    try:
        if todo:
            _dispatch(
                ray, todo, done, settings, desktops, out, shared, limits,
                (desktop_cpus, resources), max_retries, show_progress, len(all_tasks),
                on_result,
            )  # fmt: skip
    finally:
        if started_ray:
            ray.shutdown()
    return [done[t.id] for t in all_tasks if t.id in done]


def _dispatch(
    ray: Any,
    todo: Sequence[FleetTask],
    done: dict[str, FleetResult],
    settings: FleetSettings,
    desktops: int,
    out: Path,
    shared: Path | None,
    limits: LimitConfig | None,
    shape: tuple[float, dict[str, float]],
    max_retries: int,
    show_progress: bool,
    total: int,
    on_result: ProgressFn | None,
) -> None:
    """Keep every desktop busy until each task of ``todo`` has a result in ``done``."""
    from tqdm.auto import tqdm

    died = actor_died_errors()
    limiter = None
    own_limiter = False
    if settings.limiter_name is not None:
        try:
            ray.get_actor(settings.limiter_name, namespace=settings.namespace)
        except ValueError:
            own_limiter = True  # this run starts it, and ends it
        limiter = shared_limiter(limits, name=settings.limiter_name, namespace=settings.namespace)
    fleet = _Fleet(ray, settings, shape, uuid.uuid4().hex[:8])
    pending: deque[FleetTask] = deque(todo)
    attempts: dict[str, int] = {}
    running: dict[Any, tuple[int, FleetTask]] = {}
    idle: list[int] = []  # slots whose actor is up and free
    for slot in range(min(desktops, len(todo))):
        fleet.start(slot)
    bar = tqdm(total=total, initial=total - len(todo), desc="fleet", unit="task",
               disable=not show_progress)  # fmt: skip
    counts = {"ok": sum(r.ok for r in done.values()), "retries": 0}
    runs = out / RUNS_DIR
    shared_arg = str(shared) if shared is not None else None
    unseen: list[str] = []  # shared-storage runs the driver cannot see

    def finish(result: FleetResult) -> None:
        done[result.id] = result
        append_result(out, result)
        counts["ok"] += int(result.ok)
        bar.set_postfix(ok=counts["ok"], retries=counts["retries"], refresh=False)
        bar.update(1)
        if on_result is not None:
            on_result(result)

    try:
        while pending or running:
            while idle and pending:
                slot, task = idle.pop(), pending.popleft()
                attempts[task.id] = attempts.get(task.id, 0) + 1
                _, handle = fleet.actors[slot]
                ref = handle.run_task.remote(task.id, task.task, run_dir_name(task.id), shared_arg)
                running[ref] = (slot, task)
            if not running and not fleet.starting:  # every slot was given up
                while pending:
                    task = pending.popleft()
                    finish(FleetResult(
                        id=task.id, task=task.task, ok=False, stop_reason="fleet_error",
                        attempts=attempts.get(task.id, 0),
                        error=f"No desktop actor could start ({_START_TRIES} tries per "
                        f"desktop; last: {fleet.last_error}).",
                    ))  # fmt: skip
                break
            ready, _ = ray.wait([*running, *fleet.starting], num_returns=1, timeout=_QUIET_WARN_S)
            if not ready:
                if not running:
                    log.warning(
                        "No desktop actor is up after %.0f s: %d wait for room on the cluster "
                        "(each needs %g CPUs and %s); add nodes or lower --desktop-cpus.",
                        _QUIET_WARN_S, len(fleet.starting), shape[0], shape[1] or "no other "
                        "resource",
                    )  # fmt: skip
                continue
            ref = ready[0]
            if ref in fleet.starting:
                up = fleet.up(ref)
                if up is not None:
                    idle.append(up)
                continue
            slot, task = running.pop(ref)
            name = fleet.actors[slot][0]
            try:
                got: dict[str, Any] = ray.get(ref)
            except died as exc:
                log.warning("Desktop %s died running %s (%s)", name, task.id, type(exc).__name__)
                fleet.replace(slot)  # takes tasks once it is up
                if attempts[task.id] <= max_retries:
                    counts["retries"] += 1
                    pending.appendleft(task)  # from scratch, on the next free desktop
                else:
                    finish(FleetResult(
                        id=task.id, task=task.task, ok=False, stop_reason="fleet_error",
                        attempts=attempts[task.id], desktop=name,
                        error=f"Its desktop actor or node died on each of "
                        f"{attempts[task.id]} attempts (last: {type(exc).__name__}).",
                    ))  # fmt: skip
                continue
            except Exception as exc:  # the actor method raised: a bug, not a lost desktop
                idle.append(slot)
                finish(FleetResult(
                    id=task.id, task=task.task, ok=False, stop_reason="error",
                    attempts=attempts[task.id], desktop=name, error=f"{type(exc).__name__}: {exc}",
                ))  # fmt: skip
                continue
            idle.append(slot)
            archive = got.pop("archive", None)
            trajectory = got.pop("trajectory", None)
            if archive:
                trajectory = _unpack(archive, runs, run_dir_name(task.id))
            elif trajectory is not None and not unseen and not Path(trajectory).is_dir():
                unseen.append(trajectory)
                log.warning(
                    "The run directory %s is not visible on the driver's node: is %s really "
                    "shared by every node?", trajectory, shared,
                )  # fmt: skip
            finish(
                FleetResult.model_validate(
                    {**got, "attempts": attempts[task.id], "trajectory": trajectory}
                )
            )
    finally:
        bar.close()
        fleet.close()
        if limiter is not None and own_limiter:
            _end_limiter(ray, limiter.actor, settings)


__all__ = ["run_fleet"]
