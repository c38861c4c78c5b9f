#!/usr/bin/env bash
# Debian's Chromium, for the browser tests: installs the package if it is missing, then
# prints the browser's path. (Playwright drives this browser; its own download is not used.)
set -euo pipefail

browser=${JOURNEY_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$browser" ]; then
    echo "installing Chromium from Debian's packages..." >&2
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
echo "$browser"
