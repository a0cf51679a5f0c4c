#!/usr/bin/env bash
# Installs the Debian packages deskpilot's desktop needs (idempotent: does nothing when all
# are present). Package names as verified on Debian 12 (shared/reference/desktop_probe.md §9).
#   xvfb xauth x11-utils x11-apps xdotool openbox xterm xclip  - the drivable desktop
#   mousepad fonts-dejavu-core fonts-noto-cjk                     - the demo's GUI text editor, fonts
#   chromium                                                      - report screenshots (headless)
#   ffmpeg                                                        - MP4 of a run (GIF needs nothing)
#   scrot imagemagick                                             - only for the reference method in benchmarks
#   python3-venv                                                  - only when python3 cannot create a venv
set -euo pipefail
PKGS=(xvfb xauth x11-utils x11-apps xdotool openbox xterm xclip mousepad fonts-dejavu-core
      fonts-noto-cjk chromium ffmpeg scrot imagemagick)
# python3 -m venv needs ensurepip, which Debian ships separately (python3.X-venv).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  PKGS+=(python3-venv)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-desktop-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-desktop-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-desktop-deps: done"
