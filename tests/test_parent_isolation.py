"""The programs deskpilot starts cannot read deskpilot's own process (probe #1, finding A).

The bash tool's shell and the desktop's apps get a clean environment, but deskpilot's process
holds the API key in its initial environment block (``/proc/$PPID/environ``) and, when given
as ``api_key=``, in memory (``/proc/$PPID/mem``). A child Python process starts with fake keys
in its real environment (not a monkeypatched ``os.environ``, which ``/proc`` does not show),
takes another key on stdin and passes it only as ``api_key=``, then lets the bash tool and a
program on a desktop go looking: ``/proc/$PPID/environ``, every ``/proc/*/environ`` and
``cmdline``, and every readable ``/proc/*/mem``. No key may appear, reversed or not. As root
(the namespace: deskpilot's process has no ``/proc`` entry there) and, where a Python the
``nobody`` user can run is found, as ``nobody`` (the namespace, and the non-dumpable flag
alone when namespaces are switched off).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import deskpilot

CHILD = textwrap.dedent(
    r'''
    import asyncio, json, os, sys
    from deskpilot import BashTool, LLMClient, ToolCall

    MEM_SCAN = """python3 - "$PPID" <<'PY'
    import os, re, sys
    pids = {p for p in os.listdir('/proc') if p.isdigit()} | {sys.argv[1]}
    pids -= {str(os.getpid()), '0'}
    found, read = set(), []
    for pid in sorted(pids):
        try:
            maps = open(f'/proc/{pid}/maps').read().splitlines()
            mem = open(f'/proc/{pid}/mem', 'rb')
        except OSError as exc:
            print('no', pid, type(exc).__name__)
            continue
        read.append(pid)
        with mem:
            for line in maps:
                fields = line.split()
                a, b = (int(x, 16) for x in fields[0].split('-'))
                if 'r' not in fields[1] or b - a > 256 << 20:
                    continue
                try:
                    mem.seek(a)
                    data = mem.read(b - a)
                except (OSError, ValueError, OverflowError):
                    continue
                found.update(re.findall(rb'sk-ant-test-[A-Za-z0-9]{8,}', data))
    print('read', ' '.join(read))
    print('found', ' '.join(x.decode()[::-1] for x in sorted(found)))
    PY"""

    COMMANDS = [
        "echo ppid=$PPID; tr '\\0' '\\n' < /proc/$PPID/environ | rev",
        "ls /proc",
        "grep -aoE 'sk-ant-test-[A-Za-z0-9]+|aws-test-[A-Za-z0-9]+' /proc/*/environ "
        "/proc/*/cmdline 2>/dev/null | rev; cat /proc/self/environ | tr '\\0' '\\n'",
        "ls -l /proc/$PPID/fd 2>&1 | head -5",
        MEM_SCAN,
    ]

    async def main():
        arg_key = sys.stdin.readline().strip()
        if os.environ.get("DP_TEST_NO_NAMESPACE") == "1":  # as if unshare were refused
            import deskpilot.desktop.isolation as isolation
            isolation._prefix = []
        out = {}
        async with LLMClient("claude-4-sonnet", api_key=arg_key, environ={}) as client:
            assert client is not None
            async with BashTool(timeout_s=60, cwd="/tmp") as bash:
                for i, command in enumerate(COMMANDS):
                    r = await bash.execute(ToolCall(str(i), "bash", {"command": command}))
                    out[f"bash{i}"] = r.text
            if os.environ.get("DP_TEST_DESKTOP") == "1":
                from deskpilot.desktop.local import LocalDesktop
                async with LocalDesktop(320, 240) as desktop:
                    result = desktop.home / "result.txt"
                    script = " ; ".join(COMMANDS[:3]) + f" > {result} 2>&1; echo done >> {result}"
                    await desktop.launch("sh", "-c", script, wait_window=False)
                    for _ in range(200):
                        if result.exists() and result.read_text().endswith("done\n"):
                            break
                        await asyncio.sleep(0.05)
                    out["desktop"] = result.read_text()
        print(json.dumps(out))

    asyncio.run(main())
    '''
)


def fake_keys() -> dict[str, str]:
    return {
        "env": "sk-ant-test-ENV" + secrets.token_hex(12),
        "aws": "aws-test-SECRET" + secrets.token_hex(12),
        "arg": "sk-ant-test-ARG" + secrets.token_hex(12),
    }


def run_child(
    python: str,
    keys: dict[str, str],
    *,
    prefix: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(deskpilot.__file__).parents[1]), *site.getsitepackages()]
        ),
        "ANTHROPIC_API_KEY": keys["env"],
        "AWS_SECRET_ACCESS_KEY": keys["aws"],
        **(extra_env or {}),
    }
    done = subprocess.run(
        [*prefix, python, "-c", CHILD],  # the script holds no key; they come by env and stdin
        input=keys["arg"] + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd="/tmp",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def leaked(out: dict[str, str], keys: dict[str, str]) -> list[str]:
    text = "\n".join(out.values())
    return [k for k, v in keys.items() if v in text or v[::-1] in text]


def check_ran(out: dict[str, str]) -> None:
    """The commands really ran (a test that finds nothing because nothing ran proves nothing)."""
    assert out["bash1"].strip(), out  # ls /proc listed something
    assert "PATH=" in out["bash2"], out  # /proc/self/environ was readable
    assert "read " in out["bash4"], out  # the memory scan ran


def nobody_python() -> str | None:
    """A Python the ``nobody`` user can run with this checkout (this one, or the system's
    of the same version), or None."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, shutil.which(version) or "", f"/usr/bin/{version}"):
        if not python:
            continue
        ok = subprocess.run(
            [*AS_NOBODY, python, "-c", "import pydantic, deskpilot"],
            capture_output=True,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": os.pathsep.join(
                    [str(Path(deskpilot.__file__).parents[1]), *site.getsitepackages()]
                ),
            },
            cwd="/tmp",
        )
        if ok.returncode == 0:
            return python
    return None


AS_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--")


@pytest.mark.desktop
def test_bash_tool_and_desktop_programs_cannot_read_deskpilots_process():
    keys = fake_keys()
    out = run_child(sys.executable, keys, extra_env={"DP_TEST_DESKTOP": "1"})
    check_ran(out)
    assert leaked(out, keys) == [], out
    assert "ppid=0" in out["bash0"], out["bash0"]  # deskpilot is outside the namespace
    assert "done" in out["desktop"], out["desktop"]


def test_as_another_user_no_key_is_readable():
    python = nobody_python()
    if python is None:
        pytest.skip("needs root (to become nobody) and a Python nobody can run")
    keys = fake_keys()
    out = run_child(python, keys, prefix=AS_NOBODY)
    check_ran(out)
    assert leaked(out, keys) == [], out


def test_without_a_namespace_the_non_dumpable_flag_still_protects_a_non_root_user():
    python = nobody_python()
    if python is None:
        pytest.skip("needs root (to become nobody) and a Python nobody can run")
    keys = fake_keys()
    out = run_child(python, keys, prefix=AS_NOBODY, extra_env={"DP_TEST_NO_NAMESPACE": "1"})
    check_ran(out)
    assert "ppid=0" not in out["bash0"]  # really without a namespace: the parent is visible
    assert "Permission denied" in out["bash0"] + out["bash3"], out
    assert leaked(out, keys) == [], out
