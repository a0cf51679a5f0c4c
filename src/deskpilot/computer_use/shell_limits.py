"""Resource limits for the bash tool's shell (``setrlimit`` on the shell process)."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ShellLimits"]


@dataclass(frozen=True, kw_only=True)
class ShellLimits:
    """Resource limits for the bash tool's shell and everything it starts (``setrlimit``).

    Each limit is set as both the soft and the hard limit of the shell process right after it
    starts, before it runs a command (``resource.prlimit`` on its pid; the man page:
    https://man7.org/linux/man-pages/man2/getrlimit.2.html). Children inherit them. None
    leaves a limit as it is. All default to None (no limits).

    Attributes:
        max_processes: ``RLIMIT_NPROC``: processes of *this user* (all of them, not only the
            shell's) beyond which ``fork`` fails; not enforced for root.
        max_memory_bytes: ``RLIMIT_AS``: address space of each process, in bytes (at least
            64 MiB; an allocation past it fails).
        max_file_bytes: ``RLIMIT_FSIZE``: the largest file a process may write, in bytes
            (a write past it gets ``SIGXFSZ``: "File size limit exceeded").
        max_open_files: ``RLIMIT_NOFILE``: open file descriptors per process.

    Raises:
        ConfigError: a limit that is not a positive integer, or memory under 64 MiB.
    """

    max_processes: int | None = None
    max_memory_bytes: int | None = None
    max_file_bytes: int | None = None
    max_open_files: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_processes", "max_memory_bytes", "max_file_bytes", "max_open_files"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"ShellLimits.{name} must be a positive integer or None.")
        if self.max_memory_bytes is not None and self.max_memory_bytes < 64 * 2**20:
            raise ConfigError(
                "ShellLimits.max_memory_bytes must be at least 64 MiB (67108864); bash and "
                "the tools it runs need that much address space to start."
            )

    def apply(self, pid: int) -> None:
        """Set the limits on process ``pid`` (soft = hard)."""
        for value, which in (
            (self.max_processes, resource.RLIMIT_NPROC),
            (self.max_memory_bytes, resource.RLIMIT_AS),
            (self.max_file_bytes, resource.RLIMIT_FSIZE),
            (self.max_open_files, resource.RLIMIT_NOFILE),
        ):
            if value is not None:
                resource.prlimit(pid, which, (value, value))
