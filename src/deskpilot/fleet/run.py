"""``run_fleet``: many tasks over Ray desktop actors, one shared rate limit, task-level
retries, one output directory, resumable.

The driver keeps at most one attempt of each task running. When an attempt's actor, its
worker process or its node dies (:func:`~deskpilot.fleet.ray_support.actor_died_errors`),
the actor is replaced by a new one (a fresh desktop) and the task is queued again from
scratch, up to ``max_retries`` more times; only a finished attempt writes a result line, so
a task never counts twice. Results are appended to ``OUT/results.jsonl`` as they arrive and
each run's trajectory directory is unpacked into ``OUT/runs/<task id>/`` (the actors send it
back, so every node's runs end up in one place).
"""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
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


class _Fleet:
    """The actors of one run: create, replace, close."""

    def __init__(self, ray: Any, settings: FleetSettings, num_cpus: float, tag: str) -> None:
        self._ray = ray
        self._settings = settings
        self._num_cpus = num_cpus
        self._tag = tag
        self._made = 0
        self.actors: dict[int, tuple[str, Any]] = {}

    def start(self, slot: int) -> tuple[str, Any]:
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
                max_restarts=0,
                max_concurrency=4,  # run_task plus current_task/close calls
            )
            .remote(self._settings, name, server)
        )
        self.actors[slot] = (name, handle)
        return name, handle

    def replace(self, slot: int) -> None:
        _, old = self.actors[slot]
        try:
            self._ray.kill(old, no_restart=True)
        except Exception as exc:  # already gone
            log.debug("kill of a dead desktop actor: %s", exc)
        self.start(slot)

    def close(self) -> None:
        ray = self._ray
        refs = [h.close.remote() for _, h in self.actors.values()]
        try:
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
    resume: bool = False,
    limits: LimitConfig | None = None,
    desktop_cpus: float = 1.0,
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
        resume: skip tasks that already have a line in ``out_dir/results.jsonl`` (their
            old result is returned); False starts the file over.
        limits: the fleet-wide budgets of the shared limiter actor (default
            :class:`LimitConfig()`); ignored when ``settings.limiter_name`` is None.
        desktop_cpus: Ray CPUs reserved per desktop actor (fractions allowed).
        max_retries: how many times a task is started again after its actor or node died.
        address: the Ray cluster (``"auto"``, ``ray://host:10001``); None starts a local
            Ray when none is connected. A Ray this call started is shut down at the end.
        show_progress: a tqdm bar on stderr (tasks done, ok, retries).
        on_result: called in the driver with each new result as it is written.

    Returns:
        results in the order of ``tasks`` (resumed ones included).

    Raises:
        ConfigError: ``desktops`` < 1 or more than the servers, negative ``max_retries``
            or duplicate task ids.
        MissingDependencyError: Ray is not installed.
    """
    if not isinstance(desktops, int) or desktops < 1:
        raise ConfigError(f"desktops must be an integer >= 1, not {desktops!r}.")
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, not {max_retries}.")
    if desktop_cpus < 0:
        raise ConfigError(f"desktop_cpus must be >= 0 CPUs, not {desktop_cpus}.")
    all_tasks = [_as_task(t) for t in tasks]
    check_unique(all_tasks)
    settings = settings or FleetSettings()
    if settings.servers and desktops > len(settings.servers):
        raise ConfigError(
            f"{desktops} desktops need {desktops} computer servers (one desktop each), but "
            f"{len(settings.servers)} were given; pass --desktops {len(settings.servers)} or "
            "more --server URLs."
        )
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
                ray, todo, done, settings, desktops, out, limits, desktop_cpus, max_retries,
                show_progress, len(all_tasks), on_result,
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
    limits: LimitConfig | None,
    desktop_cpus: float,
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
    fleet = _Fleet(ray, settings, desktop_cpus, uuid.uuid4().hex[:8])
    pending: deque[FleetTask] = deque(todo)
    attempts: dict[str, int] = {}
    running: dict[Any, tuple[int, FleetTask]] = {}
    idle = list(range(min(desktops, len(todo))))
    for slot in idle:
        fleet.start(slot)
    bar = tqdm(total=total, initial=total - len(todo), desc="fleet", unit="task",
               disable=not show_progress)  # fmt: skip
    counts = {"ok": sum(r.ok for r in done.values()), "retries": 0}
    runs = out / RUNS_DIR

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
                ref = handle.run_task.remote(task.id, task.task, run_dir_name(task.id))
                running[ref] = (slot, task)
            [ref], _ = ray.wait(list(running), num_returns=1)
            slot, task = running.pop(ref)
            name = fleet.actors[slot][0]
            try:
                got: dict[str, Any] = ray.get(ref)
            except died as exc:
                log.warning("Desktop %s died running %s (%s)", name, task.id, type(exc).__name__)
                fleet.replace(slot)
                idle.append(slot)
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
            trajectory = _unpack(archive, runs, run_dir_name(task.id)) if archive else None
            finish(
                FleetResult.model_validate(
                    {**got, "attempts": attempts[task.id], "trajectory": trajectory}
                )
            )
    finally:
        bar.close()
        fleet.close()
        if limiter is not None and own_limiter:
            ray.kill(limiter.actor, no_restart=True)


__all__ = ["run_fleet"]
