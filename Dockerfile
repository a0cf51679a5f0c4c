# syntax=docker/dockerfile:1
# deskpilot's desktop image: one private virtual desktop (Xvfb + openbox + apps) served to
# RemoteDesktop clients by `deskpilot serve` on port 8766, behind DESKPILOT_SERVER_TOKEN.
#
#   docker build -t deskpilot-desktop .
#   docker run -d --name desk1 -p 127.0.0.1:8766:8766 --shm-size 1g \
#       -e DESKPILOT_SERVER_TOKEN="$(openssl rand -hex 32)" deskpilot-desktop
#   deskpilot run --computer ws://127.0.0.1:8766 "..."      (same token in the environment)
#
# Build arguments:
#   DESKPILOT_INSTALL_FLAGS  "--required" for a small image with only what a desktop cannot
#                            start without (no browser, editor, ffmpeg, ...); default: all
#                            of deskpilot.install.PACKAGES.
# README, "Scale out"; docs/computer-server.md for the protocol.
FROM python:3.11-slim-bookworm

ARG DESKPILOT_INSTALL_FLAGS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. The desktop's Debian packages from THE list, src/deskpilot/install.py (standard library
#    only, so it runs before deskpilot is installed; only this file invalidates the layer),
#    and tini, which reaps the orphaned processes of the desktop's programs as PID 1.
COPY src/deskpilot/install.py /tmp/deskpilot-install/deskpilot/install.py
RUN touch /tmp/deskpilot-install/deskpilot/__init__.py \
    && PYTHONPATH=/tmp/deskpilot-install python3 -m deskpilot.install $DESKPILOT_INSTALL_FLAGS \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* /tmp/deskpilot-install \
    && mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix

# 2. deskpilot itself, with the desktop extra (python-xlib, mss, numpy).
COPY pyproject.toml README.md /tmp/deskpilot-src/
COPY src /tmp/deskpilot-src/src
RUN pip install "/tmp/deskpilot-src[desktop]" && rm -rf /tmp/deskpilot-src

# 3. A non-root user runs the server and the desktop.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin deskpilot
COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER deskpilot
WORKDIR /home/deskpilot
ENV DESKPILOT_HOST=0.0.0.0 \
    DESKPILOT_PORT=8766
EXPOSE 8766

# The server's `health` method (POST /v1/health with the token): the X server answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["docker-entrypoint.sh", "health"]

# The entrypoint refuses to start without DESKPILOT_SERVER_TOKEN; arguments go to
# `deskpilot serve` (e.g. --width 1920 --height 1080 --apps terminal,browser).
ENTRYPOINT ["tini", "--", "docker-entrypoint.sh"]
CMD []
