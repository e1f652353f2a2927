#!/usr/bin/env bash
# Render a report.html to a PNG in headless Chromium (Debian's chromium), to show the report displays.
# Usage: scripts/render_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
# Needs /usr/bin/chromium (apt-get install -y chromium). The flags keep Chromium off the (closed) network.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]" >&2
  exit 2
fi
html="$(realpath "$1")"
out="$(realpath -m "$2")"
width="${3:-1280}"
height="${4:-4000}"
[[ -f "$html" ]] || { echo "error: $html: no such file" >&2; exit 2; }
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$browser" && $EUID -eq 0 ]] && command -v apt-get >/dev/null; then  # Debian's chromium, first use only
  echo "render_report: installing Debian's chromium" >&2
  (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }) >&2
  browser="$(command -v chromium || true)"
fi
[[ -n "$browser" ]] || { echo "error: chromium not found; install it with: apt-get install -y chromium" >&2; exit 3; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$profile" --window-size="${width},${height}" --screenshot="$out" "file://$html" \
  >/dev/null 2>&1
[[ -s "$out" ]] || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
