"""One rate limit for a whole Ray fleet: a named actor holds the budgets, every process's
:class:`~deskpilot.LLMClient` acquires from it through :class:`RayLimiter`.

The actor (:class:`LimitActor`) runs the same :class:`~deskpilot.client.limiter.RateLimiter`
as one process does (its :class:`~deskpilot.client.limiter.Budget` sliding-window logs and
token buckets, FIFO waiters, one timer), inside its own event loop: a process's
``acquire`` is one actor call that returns when the fleet-wide budget admits the request,
so RPM, input TPM, output TPM and concurrency hold across processes and nodes. Order is
FIFO by arrival at the actor. ``release`` and ``pause_for`` are fire-and-forget calls (the
client never waits for them).

Failure handling: an ``acquire`` whose caller is cancelled is withdrawn (if it was already
granted, the slot and its token estimates are given back); a ticket not released within
``lease_s`` seconds (its process died mid-request) is released by the actor, so a killed
worker never leaks a concurrency slot for long.

If the limiter actor itself dies (killed, its worker crashed, its node was lost), a
:class:`RayLimiter` that knows the actor's name and budgets (every one made by
:func:`shared_limiter` or :meth:`RayLimiter.connect`) brings it back: an ``acquire`` that
finds the actor dead starts a new actor under the same name with the same budgets, on the
first actor's node while that node lives (or joins the one another process started
first, ``get_if_exists``), and asks again. While Ray only reports the actor *unavailable*
(its node stopped answering and has not been declared dead yet) it waits and asks again,
with backoff. A request gives up after ``revive_attempts`` revivals or
``revive_timeout_s`` seconds without an answer, with :class:`LimiterDiedError`, which the
client turns into that prompt's error response. The new actor's budgets start empty:
requests admitted by the dead one are not counted, so in the window around a death the
fleet can send up to twice the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..client.limiter import RateLimiter, Ticket
from ..errors import ConfigError, DeskpilotError
from .ray_support import NAMESPACE, actor_died_errors, import_ray

log = logging.getLogger("deskpilot.fleet")

LIMITER_NAME = "deskpilot-limiter"
"""The default name of the fleet's limiter actor (in namespace :data:`NAMESPACE`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitConfig:
    """The fleet-wide budgets (the arguments of
    :class:`~deskpilot.client.limiter.RateLimiter`, plus the lease).

    Attributes:
        requests_per_minute: requests per window (``window_s``), or None for no limit.
        input_tokens_per_minute / output_tokens_per_minute: estimated input / output tokens
            per window, reconciled with each response's real usage; None for no limit.
        max_concurrent: requests in flight at once over the whole fleet, or None.
        burst_s: seconds of quota that may go out at once (at least one request).
        window_s: the window in seconds (60 for per-minute limits; shorter in tests, with
            the limits scaled by the same factor).
        safety_s: seconds added to the window (None: ``window_s / 240``).
        lease_s: seconds after which a ticket that was never released (its holder died) is
            released by the actor.
        arrival_slack_s: a request released within this many seconds of its admission
            counts in the window from its release (see
            :class:`~deskpilot.client.limiter.RateLimiter`): the time from the actor's
            admission to the request's arrival at the API varies across processes (the
            actor call, a cold connection), and the API counts on arrival. Costs up to
            ``arrival_slack_s / window_s`` of the rate (3% at the defaults).

    Raises:
        ConfigError: a non-positive limit, burst, window or lease.
    """

    requests_per_minute: float | None = 1_000
    input_tokens_per_minute: float | None = 500_000
    output_tokens_per_minute: float | None = None
    max_concurrent: int | None = 225
    burst_s: float = 1.0
    window_s: float = 60.0
    safety_s: float | None = None
    lease_s: float = 900.0
    arrival_slack_s: float = 2.0

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ConfigError(f"window_s must be positive seconds, not {self.window_s}.")
        if self.lease_s <= 0:
            raise ConfigError(f"lease_s must be positive seconds, not {self.lease_s}.")
        self.build()  # the RateLimiter's own checks (limits, burst, concurrency)

    def build(self) -> RateLimiter:
        """A :class:`RateLimiter` with these budgets (the one inside the actor)."""
        return RateLimiter(
            requests_per_minute=self.requests_per_minute,
            input_tokens_per_minute=self.input_tokens_per_minute,
            output_tokens_per_minute=self.output_tokens_per_minute,
            max_concurrent=self.max_concurrent,
            burst_s=self.burst_s,
            window_s=self.window_s,
            safety_s=self.safety_s,
            arrival_slack_s=self.arrival_slack_s,
        )


class LimitActor:
    """The body of the limiter actor (wrapped with ``ray.remote`` by :func:`shared_limiter`).

    Every method is ``async`` so they all run on the actor's one event loop, where the
    :class:`RateLimiter`'s futures and timer live. Tickets are named by the caller (a
    random key) so a cancel can overtake or follow its acquire.
    """

    def __init__(self, config: LimitConfig) -> None:
        self._config = config
        self._limiter = config.build()
        self._tickets: dict[str, tuple[Ticket, asyncio.TimerHandle]] = {}
        self._waiting: dict[str, asyncio.Task[Ticket]] = {}
        self._withdrawn: set[str] = set()
        self._granted = 0
        self._expired = 0

    async def acquire(self, key: str, input_tokens: float, output_tokens: float) -> bool:
        """Wait (FIFO) for one admission; True when granted, False when withdrawn first."""
        if key in self._withdrawn:
            self._withdrawn.discard(key)
            return False
        waiter = asyncio.ensure_future(self._limiter.acquire(input_tokens, output_tokens))
        self._waiting[key] = waiter
        try:
            ticket = await waiter
        except asyncio.CancelledError:
            return False
        finally:
            self._waiting.pop(key, None)
        lease = asyncio.get_running_loop().call_later(self._config.lease_s, self._expire, key)
        self._tickets[key] = (ticket, lease)
        self._granted += 1
        return True

    def _expire(self, key: str) -> None:
        held = self._tickets.pop(key, None)
        if held is not None:
            self._expired += 1
            self._limiter.release(held[0])

    async def release(
        self, key: str, input_tokens: float | None, output_tokens: float | None
    ) -> None:
        """End the request of ``key`` with its real token counts (None keeps the estimate)."""
        held = self._tickets.pop(key, None)
        if held is None:
            return  # expired, withdrawn or released already
        held[1].cancel()
        self._limiter.release(held[0], input_tokens=input_tokens, output_tokens=output_tokens)

    async def withdraw(self, key: str) -> None:
        """The caller of ``acquire(key)`` gave up: stop waiting, or give the admission back."""
        if key in self._tickets:
            await self.release(key, 0, 0)  # never sent: refund the token estimates
        elif key in self._waiting:
            self._waiting[key].cancel()
        else:
            self._withdrawn.add(key)

    async def pause_for(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` from now (the actor's clock)."""
        self._limiter.pause_for(seconds)

    async def config(self) -> dict[str, Any]:
        """The budgets as a dict (:class:`LimitConfig` fields)."""
        return asdict(self._config)

    async def node(self) -> str:
        """The hex id of the Ray node this actor runs on."""
        return str(import_ray().get_runtime_context().get_node_id())

    async def stats(self) -> dict[str, float]:
        """``in_flight``, ``waiting``, ``granted`` (total), ``expired`` (leases that ran out)
        and the amounts used in the current window (``requests``, ``input_tokens``,
        ``output_tokens``; -1 when that budget is off)."""
        lim = self._limiter
        t = time.monotonic()  # the limiter's clock
        return {
            "in_flight": lim.in_flight,
            "waiting": len(self._waiting),
            "granted": self._granted,
            "expired": self._expired,
            "requests": lim.requests.used(t) if lim.requests is not None else -1,
            "input_tokens": lim.input_tokens.used(t) if lim.input_tokens is not None else -1,
            "output_tokens": lim.output_tokens.used(t) if lim.output_tokens is not None else -1,
        }


class LimiterDiedError(DeskpilotError, ConnectionError):
    """The fleet's limiter actor died and could not be started again (see
    :class:`RayLimiter`); the request it was to admit was not sent."""


def _start_actor(
    config: LimitConfig, name: str, namespace: str, *, detached: bool, home: str | None
) -> Any:
    """The handle of the limiter actor ``name``: the running one, else a new one with
    ``config`` (``get_if_exists``: of several processes starting it at once, one wins and
    the others join it), on node ``home`` when that node is alive (Ray's soft affinity
    does not hold: it placed some actors elsewhere with room on the node), else where Ray
    puts it. Blocks (GCS calls)."""
    ray = import_ray()
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "get_if_exists": True,
        "num_cpus": 0,
        "max_concurrency": 100_000,  # every waiting acquire is one pending actor call
        "max_restarts": 0,
    }
    if detached:
        options["lifetime"] = "detached"
    if home is not None and any(n["NodeID"] == home and n["Alive"] for n in ray.nodes()):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(home, soft=False)
    return ray.remote(LimitActor).options(**options).remote(config)


class RayLimiter:
    """A :class:`~deskpilot.client.limiter.Limiter` over the fleet's limiter actor.

    Pass it as ``LLMClient(..., limiter=RayLimiter.connect())``: each attempt's ``acquire``
    is one call to the actor (about a millisecond on one machine); ``release`` and
    ``pause_for`` are sent without waiting. Picklable (the actor handle, its name, budgets
    and home node travel).

    When the actor dies, ``acquire`` starts it again under the same name with the same
    budgets (or joins the one another process already started) and asks again; the new
    actor's budgets start empty (see the module docstring for the bounds). A revived actor is detached (``lifetime="detached"``), so it does
    not die with whichever worker happened to revive it; :func:`~deskpilot.fleet.run_fleet`
    ends it with the run, others end it with ``ray.kill(ray.get_actor(name,
    namespace=...))``.

    Args:
        actor: the handle of a running limiter actor (see :func:`shared_limiter`).
        name / namespace: the actor's Ray name; config: its budgets. Without both
            ``name`` and ``config`` the actor cannot be revived and its death makes
            ``acquire`` raise :class:`LimiterDiedError` at once.
        home_node: the hex id of the Ray node a revived actor runs on while that node is
            alive (the node of the first actor; None: where Ray puts it).
        revive_attempts: revivals per request before giving up (>= 0).
        revive_timeout_s: seconds a request waits for a dead or unavailable actor to
            answer again (revived or back) before giving up.

    Raises:
        ConfigError: a negative ``revive_attempts`` or ``revive_timeout_s``.
    """

    def __init__(
        self,
        actor: Any,
        *,
        name: str | None = None,
        namespace: str = NAMESPACE,
        config: LimitConfig | None = None,
        home_node: str | None = None,
        revive_attempts: int = 3,
        revive_timeout_s: float = 60.0,
    ) -> None:
        if revive_attempts < 0:
            raise ConfigError(f"revive_attempts must be >= 0, not {revive_attempts}.")
        if revive_timeout_s < 0:
            raise ConfigError(f"revive_timeout_s must be >= 0 seconds, not {revive_timeout_s}.")
        self._revive_timeout_s = revive_timeout_s
        self._actor = actor
        self._name = name
        self._namespace = namespace
        self._config = config
        self._home = home_node
        self._revive_attempts = revive_attempts
        self._open: set[str] = set()
        self._revived = 0
        self._lock: asyncio.Lock | None = None

    @classmethod
    def connect(
        cls, name: str = LIMITER_NAME, namespace: str = NAMESPACE, *, wait_s: float = 10.0
    ) -> RayLimiter:
        """The limiter actor ``name`` of a running fleet (``ray.init`` must have run).

        Blocks for two actor calls (its budgets and node, for reviving it); call it from a
        worker thread inside async code. An actor that is missing or dead is looked up
        again every 0.2 s for up to ``wait_s`` seconds, the time another process takes to
        revive a dead one.

        Raises:
            ConfigError: there is no such actor (start it with :func:`shared_limiter`).
            LimiterDiedError: it is dead and nobody started it again within ``wait_s``.
        """
        ray = import_ray()
        died = actor_died_errors()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                actor = ray.get_actor(name, namespace=namespace)
                config, home = ray.get([actor.config.remote(), actor.node.remote()], timeout=120)
                return cls(
                    actor,
                    name=name,
                    namespace=namespace,
                    config=LimitConfig(**config),
                    home_node=home,
                )
            except ValueError as exc:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"No limiter actor {name!r} in Ray namespace {namespace!r}; start one "
                        "with deskpilot.fleet.shared_limiter(...) in the driver first."
                    ) from exc
            except died as exc:
                if time.monotonic() >= deadline:
                    raise LimiterDiedError(
                        f"The limiter actor {name!r} is dead and was not started again "
                        f"within {wait_s:g} s; start it with shared_limiter(...)."
                    ) from exc
            time.sleep(0.2)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "actor": self._actor,
            "name": self._name,
            "namespace": self._namespace,
            "config": self._config,
            "home": self._home,
            "revive_attempts": self._revive_attempts,
            "revive_timeout_s": self._revive_timeout_s,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._actor = state["actor"]
        self._name = state["name"]
        self._namespace = state["namespace"]
        self._config = state["config"]
        self._home = state["home"]
        self._revive_attempts = state["revive_attempts"]
        self._revive_timeout_s = state["revive_timeout_s"]
        self._open = set()
        self._revived = 0
        self._lock = None

    def __repr__(self) -> str:
        return f"RayLimiter(name={self._name!r}, in_flight={len(self._open)})"

    @property
    def actor(self) -> Any:
        """The limiter actor's handle (``ray.get(limiter.actor.stats.remote())``); a new
        one after a revival."""
        return self._actor

    @property
    def revived(self) -> int:
        """How many times this object started (or joined) a new limiter actor."""
        return self._revived

    @property
    def in_flight(self) -> int:
        """Requests this process was admitted and has not released."""
        return len(self._open)

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0) -> str:
        """Wait until the fleet's budget admits one request; returns the ticket key.

        Raises:
            LimiterDiedError: the limiter actor died and did not answer again (revived or
                back) within ``revive_attempts`` revivals and ``revive_timeout_s`` seconds,
                or this object cannot revive it.
            ConfigError: a revived actor of that name runs with other budgets.
        """
        ray = import_ray()
        died = actor_died_errors()
        unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())
        revivals = 0
        since: float | None = None
        backoff = 0.1
        while True:
            actor = self._actor
            key = uuid.uuid4().hex
            try:
                granted = await self._ask(actor, key, float(input_tokens), float(output_tokens))
            except died as exc:
                if self._name is None or self._config is None:
                    raise LimiterDiedError(
                        f"The fleet's limiter actor died ({type(exc).__name__}) and this "
                        "RayLimiter cannot start it again (made without name= and config=); "
                        "use RayLimiter.connect() or shared_limiter()."
                    ) from exc
                now = time.monotonic()
                since = now if since is None else since
                if revivals >= self._revive_attempts or now - since > self._revive_timeout_s:
                    raise LimiterDiedError(
                        f"The fleet's limiter actor {self._name!r} did not answer again in "
                        f"{now - since:.1f} s after {revivals} revivals (last: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0]})."
                    ) from exc
                if not isinstance(exc, unavailable):  # dead for sure: start another
                    log.warning(
                        "The limiter actor %r died (%s); starting it again (budgets restart)",
                        self._name,
                        type(exc).__name__,
                    )
                    try:
                        await self._revive(actor)
                        revivals += 1
                        continue
                    except died as again:  # the name still leads to the dying actor
                        log.info("Reviving the limiter actor: %s", type(again).__name__)
                await asyncio.sleep(backoff)  # unavailable: its node may answer or be declared dead
                backoff = min(2 * backoff, 2.0)
                continue
            if not granted:  # withdrawn by someone else: cannot happen for our own keys
                raise ConfigError(f"The limiter actor refused ticket {key}; it was withdrawn.")
            self._open.add(key)
            return key

    @staticmethod
    async def _ask(actor: Any, key: str, input_tokens: float, output_tokens: float) -> bool:
        ref = actor.acquire.remote(key, input_tokens, output_tokens)
        try:
            return bool(await ref)
        except asyncio.CancelledError:
            actor.withdraw.remote(key)
            raise

    async def _revive(self, dead: Any) -> None:
        """Replace the dead actor handle ``dead`` by a live one (once per death in this
        process: concurrent acquires wait for the first one's revival).

        Raises:
            the Ray error of the new handle's first call (the name still led to the dead
            actor, or the new one died at once); ConfigError: other budgets.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._actor is not dead:
                return  # another acquire of this process revived it already
            actor = await asyncio.to_thread(self._restart, dead)
            running = await actor.config.remote()
            expected = asdict(self._config) if self._config is not None else None
            if running != expected:
                raise ConfigError(
                    f"The limiter actor {self._name!r} was started again with {running}, not "
                    f"{expected}; give every process the same budgets."
                )
            self._actor = actor
            self._revived += 1

    def _restart(self, dead: Any) -> Any:
        """Free the dead actor's name, then start (or join) its successor. Blocks."""
        assert self._name is not None and self._config is not None
        try:  # an actor lost with its node keeps its name while handles to it exist
            import_ray().kill(dead, no_restart=True)
        except Exception as exc:
            log.debug("kill of the dead limiter actor: %s", exc)
        return _start_actor(
            self._config, self._name, self._namespace, detached=True, home=self._home
        )

    def release(
        self,
        ticket: Any,
        *,
        input_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> None:
        """End the request of ``ticket`` (idempotent; not awaited). A ticket of a dead
        actor is ignored by its successor."""
        if ticket not in self._open:
            return
        self._open.discard(ticket)
        self._actor.release.remote(
            ticket,
            None if input_tokens is None else float(input_tokens),
            None if output_tokens is None else float(output_tokens),
        )

    def pause_for(self, seconds: float) -> None:
        """Admit nothing fleet-wide for ``seconds`` from now (not awaited)."""
        self._actor.pause_for.remote(max(0.0, float(seconds)))


def shared_limiter(
    config: LimitConfig | None = None,
    *,
    name: str = LIMITER_NAME,
    namespace: str = NAMESPACE,
    detached: bool = False,
) -> RayLimiter:
    """Start the fleet's limiter actor, or join it when it already runs with the same budgets.

    A new actor is placed on this process's node (the driver's node is usually the
    longest-lived), and revived there after a death while that node lives (see
    :class:`RayLimiter`).

    Args:
        config: the budgets (default :class:`LimitConfig()`: 1,000 RPM, 500,000 input TPM,
            225 in flight).
        name / namespace: the actor's Ray name (every process finds it by these).
        detached: keep the actor alive after this driver exits (``lifetime="detached"``);
            end it with ``ray.kill(limiter.actor)``.

    Returns:
        a :class:`RayLimiter` for this process's ``LLMClient``.

    Raises:
        ConfigError: an actor of that name runs with different budgets.
        MissingDependencyError: Ray is not installed.
    """
    ray = import_ray()
    config = config or LimitConfig()
    home = str(ray.get_runtime_context().get_node_id())
    actor = _start_actor(config, name, namespace, detached=detached, home=home)
    running = ray.get(actor.config.remote())
    if running != asdict(config):
        raise ConfigError(
            f"The limiter actor {name!r} already runs with {running}, not {asdict(config)}; "
            "use another name= or the same budgets."
        )
    return RayLimiter(actor, name=name, namespace=namespace, config=config, home_node=home)


__all__ = [
    "LIMITER_NAME",
    "LimitActor",
    "LimitConfig",
    "LimiterDiedError",
    "RayLimiter",
    "shared_limiter",
]
