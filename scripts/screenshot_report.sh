#!/usr/bin/env bash
# Screenshot a run's report.html with headless Chromium (Debian's /usr/bin/chromium):
#   scripts/screenshot_report.sh RUN_DIR OUT.png [WIDTH,HEIGHT]
# Offline: every host name resolves to nothing, so the picture shows only what the report embeds.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 RUN_DIR OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
run_dir=$1
out=$2
size=${3:-1280,2400}
report="$run_dir/report.html"
[ -f "$report" ] || { echo "error: $report does not exist (siked report $run_dir writes it)" >&2; exit 1; }
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$chromium" ] || { echo "error: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$profile" \
    --window-size="$size" --virtual-time-budget=5000 \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$report")" >/dev/null 2>&1
[ -s "$out" ] || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
