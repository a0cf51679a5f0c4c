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
worker never leaks a concurrency slot for long. If the limiter actor itself dies, every
``acquire`` fails and the client turns the prompt into an error response.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..client.limiter import RateLimiter, Ticket
from ..errors import ConfigError
from .ray_support import NAMESPACE, import_ray

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


class RayLimiter:
    """A :class:`~deskpilot.client.limiter.Limiter` over the fleet's limiter actor.

    Pass it as ``LLMClient(..., limiter=RayLimiter.connect())``: each attempt's ``acquire``
    is one call to the actor (about a millisecond on one machine); ``release`` and
    ``pause_for`` are sent without waiting. Picklable (only the actor handle travels).

    Args:
        actor: the handle of a running limiter actor (see :func:`shared_limiter`).
    """

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._open: set[str] = set()

    @classmethod
    def connect(cls, name: str = LIMITER_NAME, namespace: str = NAMESPACE) -> RayLimiter:
        """The limiter actor ``name`` of a running fleet (``ray.init`` must have run).

        Raises:
            ConfigError: there is no such actor (start it with :func:`shared_limiter`).
        """
        ray = import_ray()
        try:
            actor = ray.get_actor(name, namespace=namespace)
        except ValueError as exc:
            raise ConfigError(
                f"No limiter actor {name!r} in Ray namespace {namespace!r}; start one with "
                "deskpilot.fleet.shared_limiter(...) in the driver first."
            ) from exc
        return cls(actor)

    def __getstate__(self) -> dict[str, Any]:
        return {"actor": self._actor}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._actor = state["actor"]
        self._open = set()

    def __repr__(self) -> str:
        return f"RayLimiter(in_flight={len(self._open)})"

    @property
    def actor(self) -> Any:
        """The limiter actor's handle (``ray.get(limiter.actor.stats.remote())``)."""
        return self._actor

    @property
    def in_flight(self) -> int:
        """Requests this process was admitted and has not released."""
        return len(self._open)

    async def acquire(self, input_tokens: float = 0, output_tokens: float = 0) -> str:
        """Wait until the fleet's budget admits one request; returns the ticket key.

        Raises:
            ray.exceptions.RayActorError: the limiter actor is gone.
        """
        key = uuid.uuid4().hex
        ref = self._actor.acquire.remote(key, float(input_tokens), float(output_tokens))
        try:
            granted = await ref
        except asyncio.CancelledError:
            self._actor.withdraw.remote(key)
            raise
        if not granted:  # withdrawn by someone else: cannot happen for our own keys
            raise ConfigError(f"The limiter actor refused ticket {key}; it was withdrawn.")
        self._open.add(key)
        return key

    def release(
        self,
        ticket: Any,
        *,
        input_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> None:
        """End the request of ``ticket`` (idempotent; not awaited)."""
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
    actor = ray.remote(LimitActor).options(**options).remote(config)
    running = ray.get(actor.config.remote())
    if running != asdict(config):
        raise ConfigError(
            f"The limiter actor {name!r} already runs with {running}, not {asdict(config)}; "
            "use another name= or the same budgets."
        )
    return RayLimiter(actor)


__all__ = ["LIMITER_NAME", "LimitActor", "LimitConfig", "RayLimiter", "shared_limiter"]
