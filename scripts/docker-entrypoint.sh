#!/bin/sh
# deskpilot's container entrypoint: one desktop served by `deskpilot serve`, behind a token.
#
#   docker-entrypoint.sh [deskpilot serve options...]   start the computer server (default)
#   docker-entrypoint.sh health                         exit 0 when the server's `health`
#                                                       method answers ok (the HEALTHCHECK)
#
# Environment:
#   DESKPILOT_SERVER_TOKEN  required, at least 16 characters (e.g. `openssl rand -hex 32`):
#                           the server binds to every interface, so every request must
#                           carry `Authorization: Bearer <token>`; without it, nothing starts
#   DESKPILOT_HOST          the address to bind (default 0.0.0.0)
#   DESKPILOT_PORT          the port (default 8766)
#   DESKPILOT_WIDTH, DESKPILOT_HEIGHT, DESKPILOT_APPS   the desktop (deskpilot serve's)
#   DESKPILOT_HEALTH_TIMEOUT_S  seconds the health check waits for an answer (default 5)
#
# The token is passed in the environment, never on the command line (a command line is
# visible to every user of the host in the process list). See README, "Scale out".
set -eu

die() {
    echo "docker-entrypoint: $*" >&2
    exit 64
}

token="${DESKPILOT_SERVER_TOKEN:-}"
if [ -z "$token" ]; then
    die "DESKPILOT_SERVER_TOKEN is not set, so the desktop server would take orders from \
anyone who can reach its port; refusing to start. Pass a long random secret, e.g. \
docker run -e DESKPILOT_SERVER_TOKEN=\"\$(openssl rand -hex 32)\" ..."
fi
if [ "${#token}" -lt 16 ]; then
    die "DESKPILOT_SERVER_TOKEN is ${#token} characters long; use at least 16 \
(e.g. openssl rand -hex 32). Refusing to start."
fi
export DESKPILOT_SERVER_TOKEN
port="${DESKPILOT_PORT:-8766}"
case "$port" in
    '' | *[!0-9]*) die "DESKPILOT_PORT must be a port number, not '$port'." ;;
esac

if [ "${1:-}" = "health" ]; then
    export DESKPILOT_PORT="$port"
    exec python3 -c '
import json, os, sys, urllib.error, urllib.request

url = "http://127.0.0.1:%s/v1/health" % os.environ["DESKPILOT_PORT"]
request = urllib.request.Request(
    url,
    data=b"{}",
    method="POST",
    headers={
        "Authorization": "Bearer " + os.environ["DESKPILOT_SERVER_TOKEN"],
        "Content-Type": "application/json",
    },
)
timeout_s = float(os.environ.get("DESKPILOT_HEALTH_TIMEOUT_S") or 5)
try:
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        body = json.load(answer)
except urllib.error.HTTPError as exc:
    detail = exc.read(400).decode("utf-8", "replace")
    sys.exit("unhealthy: %s answered HTTP %d: %s" % (url, exc.code, detail))
except (OSError, ValueError) as exc:
    sys.exit("unhealthy: no answer from %s: %s" % (url, exc))
result = body.get("result") or {}
if result.get("ok") is not True:
    sys.exit("unhealthy: %s" % (result.get("detail") or body.get("error") or body))
print("healthy: %s %sx%s" % (result.get("display"), result.get("width"), result.get("height")))
'
fi

exec deskpilot serve --host "${DESKPILOT_HOST:-0.0.0.0}" --port "$port" "$@"
