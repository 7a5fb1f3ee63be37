#!/bin/sh
# Headless Chromium screenshot of the Dagster asset graph (the picture in the README).
#
#   make dev                      # in one terminal: the UI on http://127.0.0.1:3000
#   scripts/screenshot.sh         # in another: writes docs/asset-graph.png
#
# Needs Debian's `chromium` (apt-get install -y chromium). Arguments: output file, UI URL, path.
# The asset graph is drawn by JavaScript after the page loads: --virtual-time-budget gives it 15 s
# of page time before the picture is taken.
set -eu
OUT=${1:-docs/asset-graph.png}
UI=${2:-http://127.0.0.1:3000}
PAGE=${3:-/asset-groups}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
    echo "screenshot.sh: no chromium on PATH (Debian: apt-get install -y chromium)" >&2
    exit 2
fi
if ! curl -fsS -o /dev/null "$UI/server_info"; then
    echo "screenshot.sh: no Dagster UI answers at $UI (start it with \`make dev\`)" >&2
    exit 2
fi
# Wait (up to 2 minutes) until the code location is loaded, else the picture is a spinner.
QUERY='{"query":"{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}'
i=0
until curl -fsS -H 'Content-Type: application/json' -d "$QUERY" "$UI/graphql" | grep -q '"LOADED"'; do
    i=$((i + 1))
    [ "$i" -lt 60 ] || { echo "screenshot.sh: the code location did not load" >&2; exit 1; }
    sleep 2
done
mkdir -p "$(dirname "$OUT")"
# --no-sandbox: Chromium's sandbox refuses to run as root (containers, CI).
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$OUT" --window-size=1600,1000 --virtual-time-budget=15000 "$UI$PAGE"
echo "wrote $OUT"
