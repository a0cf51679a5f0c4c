"""The container image: the Dockerfile's structure, .dockerignore, compose.yaml, and the
entrypoint script run directly (no Docker needed); where a Docker daemon runs, the image is
built and an agent runs against a container of it."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deskpilot.install import PACKAGES

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SCRIPT = ROOT / "scripts" / "docker-entrypoint.sh"
TOKEN = "test-token-0123456789abcdef"
BIN = Path(sys.executable).parent  # the venv's python3 and deskpilot


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def test_dockerfile_is_debian_slim_with_a_non_root_user():
    (base,) = args_of("FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim-(bookworm|trixie)", base), base
    users = args_of("USER")
    assert users and users[-1] not in ("root", "0", "0:0"), users
    runs = " ".join(args_of("RUN"))
    assert (
        f"useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin {users[-1]}"
        in runs
    )


def test_dockerfile_installs_the_package_list_of_install_py():
    runs = args_of("RUN")
    copies = args_of("COPY")
    assert any(c.startswith("src/deskpilot/install.py ") for c in copies), copies
    assert any("python3 -m deskpilot.install" in r for r in runs), runs
    # the list has one source: no desktop package is named in the Dockerfile itself
    for r in runs:
        for cmd in re.findall(r"apt-get install[^&]*", r):
            named = set(cmd.split()) & {p.name for p in PACKAGES}
            assert not named, f"{named} installed by name; they come from deskpilot.install"
    assert any("rm -rf /var/lib/apt/lists/*" in r for r in runs)
    assert any(re.search(r"pip install \S*\[desktop\]", r) for r in runs), runs


def test_dockerfile_entrypoint_healthcheck_and_port():
    from deskpilot.remote.protocol import DEFAULT_PORT

    (entry,) = args_of("ENTRYPOINT")
    assert entry == '["tini", "--", "docker-entrypoint.sh"]'
    assert any(
        c.endswith("scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh")
        and "--chmod=0755" in c
        for c in args_of("COPY")
    )
    (health,) = args_of("HEALTHCHECK")
    assert health.endswith('CMD ["docker-entrypoint.sh", "health"]'), health
    assert "--timeout=" in health and "--start-period=" in health
    assert args_of("EXPOSE") == [str(DEFAULT_PORT)]
    assert f"DESKPILOT_PORT={DEFAULT_PORT}" in " ".join(args_of("ENV"))
    assert os.access(SCRIPT, os.X_OK), "scripts/docker-entrypoint.sh is not executable"


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule, for the patterns used here: the last match wins; a
    pattern matches the path or any of its parent directories."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pat) for prefix in prefixes)
        if hit:
            result = not negate
    return result


def test_dockerignore_sends_only_what_the_image_copies():
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [x.strip() for x in lines if x.strip() and not x.startswith("#")]
    for needed in (
        "pyproject.toml",
        "README.md",
        "src/deskpilot/install.py",
        "src/deskpilot/server/command.py",
        "scripts/docker-entrypoint.sh",
    ):
        assert not ignored(needed, patterns), needed
    for secret in (".venv/bin/python", ".git/config", ".env", "tests/test_pool.py", "runs/x"):
        assert ignored(secret, patterns), secret
    assert ignored("src/deskpilot/__pycache__/x.pyc", patterns)


def test_compose_starts_n_desktops_behind_a_required_token():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    (name,) = compose["services"]
    desktop = compose["services"][name]
    assert desktop["build"] == "."
    assert desktop["environment"]["DESKPILOT_SERVER_TOKEN"].startswith("${DESKPILOT_SERVER_TOKEN:?")
    assert desktop["deploy"]["replicas"] == "${DESKPILOT_DESKTOPS:-2}"
    (port,) = desktop["ports"]
    # one host port per replica, on 127.0.0.1 unless told otherwise
    assert port == "${DESKPILOT_PUBLISH_HOST:-127.0.0.1}:8766-8797:8766"
    assert "shm_size" in desktop


# ------------------------------------------------------------------ the script, run directly
def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    if os.environ.get("PYTHONPATH"):  # a suite run on a snapshot of src
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), *args],
        env=script_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [(), ("health",), ("--port", "9")])
def test_entrypoint_refuses_to_start_without_a_token(tmp_path, args):
    done = run_script(tmp_path, *args)
    assert done.returncode == 64, done
    assert "DESKPILOT_SERVER_TOKEN is not set" in done.stderr
    assert "refusing to start" in done.stderr and "openssl rand -hex 32" in done.stderr
    assert done.stdout == ""


def test_entrypoint_refuses_a_short_token_and_a_bad_port(tmp_path):
    done = run_script(tmp_path, DESKPILOT_SERVER_TOKEN="short")
    assert done.returncode == 64 and "is 5 characters long; use at least 16" in done.stderr
    done = run_script(tmp_path, DESKPILOT_SERVER_TOKEN=TOKEN, DESKPILOT_PORT="87x")
    assert done.returncode == 64 and "must be a port number, not '87x'" in done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.desktop
async def test_entrypoint_serves_a_desktop_that_answers_health_and_runs_an_agent(tmp_path):
    from deskpilot import LLMClient
    from deskpilot.agent.loop import Agent
    from deskpilot.remote import RemoteDesktop
    from deskpilot.testing import FakeModelServer
    from deskpilot.testing.wire import message_response, text_response, tool_use_block

    port = str(free_port())
    env = {
        "DESKPILOT_SERVER_TOKEN": TOKEN,
        "DESKPILOT_PORT": port,
        "DESKPILOT_WIDTH": "320",
        "DESKPILOT_HEIGHT": "240",
        "DESKPILOT_APPS": "",
    }
    server = subprocess.Popen(
        ["sh", str(SCRIPT)],
        env=script_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            health = run_script(tmp_path, "health", **env)
            if health.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(0.2)
        assert health.returncode == 0, (health, server.poll())
        assert re.fullmatch(r"healthy: :\d+ 320x240\n", health.stdout), health.stdout
        wrong = run_script(tmp_path, "health", **{**env, "DESKPILOT_SERVER_TOKEN": "x" * 20})
        assert wrong.returncode == 1 and "answered HTTP 401" in wrong.stderr, wrong
        # the process is `deskpilot serve` itself (exec), bound to every interface
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline and b"0.0.0.0" in cmdline, cmdline

        def handler(req):
            if len(req.body["messages"]) == 1:
                command = "echo from-the-container-desktop $DISPLAY"
                return message_response([tool_use_block("bash", {"command": command}, id="c1")])
            return text_response("done")

        async with FakeModelServer() as fake:
            fake.handler = handler
            async with (
                LLMClient(
                    "claude-4-sonnet",
                    base_url=fake.url,
                    api_key="sk-ant-container-key-0000",
                    max_attempts=1,
                    progress="none",
                ) as client,
                RemoteDesktop(f"ws://127.0.0.1:{port}", token=TOKEN) as desktop,
            ):
                result = await Agent(client, computer=desktop, out_dir=tmp_path).run("go")
            sent = fake.requests[-1].body["messages"][-1]["content"][0]["content"]
        assert result.ok and result.final_text == "done", result.error
        assert "from-the-container-desktop :" in str(sent)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        err = server.stderr.read() if server.stderr else ""
        if server.stdout:
            server.stdout.close()
        if server.stderr:
            server.stderr.close()
    assert code == 128 + signal.SIGTERM, err  # deskpilot serve's exit status after a signal
    assert "Traceback" not in err, err
    gone = run_script(tmp_path, "health", **env)
    assert gone.returncode == 1 and "unhealthy: no answer from" in gone.stderr


def docker_unavailable() -> str | None:
    """Why no image can be built here, or None when a Docker daemon answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed"
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines() or ["no output"]
        return f"no Docker daemon answers (`docker info`: {lines[-1]})"
    return None


@pytest.mark.slow
@pytest.mark.desktop
async def test_image_builds_and_an_agent_drives_a_container(tmp_path):
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(
            f"Docker image not built: {reason}. The entrypoint script is tested directly "
            "(test_entrypoint_*) and the Dockerfile structurally (test_dockerfile_*)."
        )
    from deskpilot import LLMClient
    from deskpilot.agent.loop import Agent
    from deskpilot.remote import RemoteDesktop
    from deskpilot.testing import FakeModelServer
    from deskpilot.testing.wire import message_response, text_response, tool_use_block

    tag = "deskpilot-desktop:test"
    argv = ["docker", "build", "-q", "--build-arg", "DESKPILOT_INSTALL_FLAGS=--required"]
    build = subprocess.run(
        [*argv, "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    refused = subprocess.run(
        ["docker", "run", "--rm", tag], capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 64 and "refusing to start" in refused.stderr
    name = f"deskpilot-test-{os.getpid()}"
    env_args = ["-e", f"DESKPILOT_SERVER_TOKEN={TOKEN}", "-e", "DESKPILOT_APPS="]
    run = subprocess.run(
        [*("docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8766"), *env_args, tag],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    try:
        port = (
            subprocess.run(
                ["docker", "port", name, "8766/tcp"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["docker", "exec", name, "docker-entrypoint.sh", "health"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if status.startswith("healthy"):
                break
            time.sleep(1)
        assert status.startswith("healthy"), status
        user = subprocess.run(
            ["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert user == "10001"

        async with FakeModelServer() as fake:
            fake.handler = lambda req: (
                message_response([tool_use_block("bash", {"command": "id -un"}, id="c1")])
                if len(req.body["messages"]) == 1
                else text_response("done")
            )
            async with (
                LLMClient(
                    "claude-4-sonnet",
                    base_url=fake.url,
                    api_key="sk-ant-container-key-0000",
                    max_attempts=1,
                    progress="none",
                ) as client,
                RemoteDesktop(f"ws://127.0.0.1:{port}", token=TOKEN) as desktop,
            ):
                result = await Agent(client, computer=desktop, out_dir=tmp_path).run("go")
            sent = fake.requests[-1].body["messages"][-1]["content"][0]["content"]
        assert result.ok and "deskpilot" in str(sent)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
