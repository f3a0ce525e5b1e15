#!/usr/bin/env bash
# Smoke check of the built app (not part of the test suite: a build takes minutes).
#
# Under Xvfb, the built executable opens its window; then it indexes a small SynthScenes folder,
# answers a query, and builds the offline demo with the bundle it ships. Every step is timed; the
# script exits non-zero as soon as one fails. The app runs with an empty environment (like a
# double-click): no PYTHONPATH, a throwaway HOME, HF_HUB_OFFLINE=1.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: packaging/smoke_check.sh [--app PATH] [--media DIR] [--python PY] [--keep]

  --app PATH     the built executable (default: dist/FastSlow/FastSlow)
  --media DIR    SynthScenes folder to index (default: generated first, with the dev environment:
                 PY -m training.synthscenes --out DIR --images 40 --videos 2 --seed 7)
  --python PY    the dev environment's python, to generate the media and read JSON (default: python3)
  --keep         keep the work folder (library, logs) for a look afterwards
Needs Xvfb, xwininfo (x11-utils) and xdotool.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP="$REPO/dist/FastSlow/FastSlow"
MEDIA=""
PY=${PYTHON:-python3}
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --app) APP=$2; shift 2 ;;
        --media) MEDIA=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "smoke_check: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

for tool in Xvfb xwininfo xdotool; do
    command -v "$tool" >/dev/null || { echo "smoke_check: $tool is missing (apt-get install xvfb x11-utils xdotool)" >&2; exit 2; }
done
[[ -x "$APP" ]] || { echo "smoke_check: $APP is not an executable; build it with python packaging/build.py" >&2; exit 2; }
APP=$(cd "$(dirname "$APP")" && pwd)/$(basename "$APP")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastslow-smoke.XXXXXX")
XVFB_PID="" APP_PID=""
cleanup() {
    [[ -n "$APP_PID" ]] && kill "$APP_PID" 2>/dev/null || true
    [[ -n "$XVFB_PID" ]] && kill "$XVFB_PID" 2>/dev/null || true
    if [[ $KEEP == 1 ]]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

declare -a TIMINGS=()
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "SMOKE CHECK FAILED: $*" >&2; for t in "${TIMINGS[@]}"; do echo "  $t" >&2; done; exit 1; }
step() { echo "== $*"; }

# -- media (dev environment, before the app runs) -------------------------------------------------
if [[ -z "$MEDIA" ]]; then
    MEDIA="$WORK/media"
    step "generating SynthScenes media in $MEDIA"
    t=$(now)
    (cd "$REPO" && "$PY" -m training.synthscenes --out "$MEDIA" --images 40 --videos 2 --seed 7 >"$WORK/media.log" 2>&1) \
        || { cat "$WORK/media.log" >&2; fail "could not generate the media"; }
    TIMINGS+=("generate media: $(since "$t") s (dev environment, not the app)")
fi
MEDIA=$(cd "$MEDIA" && pwd)
EXPECTED=$(find "$MEDIA" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.mp4' -o -iname '*.avi' -o -iname '*.mkv' -o -iname '*.webm' \) | wc -l)
LIB="$WORK/library"

# The app sees only what a desktop session gives it.
mkdir -p "$WORK/home"
APPENV=(env -i "HOME=$WORK/home" "PATH=/usr/local/bin:/usr/bin:/bin" "LANG=C.UTF-8"
        "XDG_CONFIG_HOME=$WORK/home/.config" "XDG_DATA_HOME=$WORK/home/.local/share"
        "XDG_CACHE_HOME=$WORK/home/.cache" "XDG_RUNTIME_DIR=$WORK/runtime" "HF_HUB_OFFLINE=1")
mkdir -p "$WORK/runtime" && chmod 700 "$WORK/runtime"

json_check() {  # json_check FILE PYTHON-EXPRESSION-OVER-d MESSAGE
    "$PY" -c 'import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
ok = eval(sys.argv[2], {"d": d, "os": __import__("os")})
sys.exit(0 if ok else 1)' "$1" "$2" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$3"; }
}

# -- 1. the window ------------------------------------------------------------------------------------
step "starting Xvfb"
Xvfb -displayfd 5 -screen 0 1400x900x24 -nolisten tcp -noreset 5>"$WORK/display" 2>"$WORK/xvfb.log" &
XVFB_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/display" ]] && break; sleep 0.1; done
[[ -s "$WORK/display" ]] || fail "Xvfb did not start"
export DISPLAY=":$(head -1 "$WORK/display")"

step "opening the app window"
t=$(now)
"${APPENV[@]}" "DISPLAY=$DISPLAY" QT_QPA_PLATFORM=xcb "$APP" --library "$LIB" >"$WORK/gui.log" 2>&1 &
APP_PID=$!
WINDOW=""
for _ in $(seq 1200); do  # up to 120 s: a cold start reads a few GB of libraries on a busy machine
    if WINDOW=$(xwininfo -name FastSlow 2>/dev/null | awk '/Window id:/ { print $4; exit }') && [[ -n "$WINDOW" ]]; then break; fi
    kill -0 "$APP_PID" 2>/dev/null || { cat "$WORK/gui.log" >&2; fail "the app exited before it showed a window"; }
    sleep 0.1
done
[[ -n "$WINDOW" ]] || { cat "$WORK/gui.log" >&2; fail "no window named FastSlow within 120 s"; }
TIMINGS+=("window shown: $(since "$t") s after launch")
WM_CLASS=$(xprop -id "$WINDOW" WM_CLASS 2>/dev/null | sed 's/.*= //' || true)
echo "   window $WINDOW, WM_CLASS $WM_CLASS"
# The window comes first; torch, open_clip and the models load behind it. Wait until torchvision's
# ops library (the last native piece open_clip pulls in) is mapped, then give the start-up a moment.
loaded=""
for _ in $(seq 1200); do
    kill -0 "$APP_PID" 2>/dev/null || { cat "$WORK/gui.log" >&2; fail "the app died after showing its window"; }
    if grep -q "torchvision/_C" "/proc/$APP_PID/maps" 2>/dev/null; then loaded=1; break; fi
    sleep 0.1
done
[[ -n "$loaded" ]] || { cat "$WORK/gui.log" >&2; fail "the app did not load its ML libraries within 120 s"; }
TIMINGS+=("ML libraries loaded (torch, open_clip, torchvision ops): $(since "$t") s after launch")
sleep 5
kill -0 "$APP_PID" 2>/dev/null || { cat "$WORK/gui.log" >&2; fail "the app died while starting up"; }
if grep -qE "Traceback|Error|FATAL" "$WORK/gui.log"; then cat "$WORK/gui.log" >&2; fail "the app logged an error while starting up"; fi
t=$(now)
xdotool windowfocus --sync "$WINDOW" 2>/dev/null || true
xdotool key ctrl+q  # XTEST, like a keyboard: sent events are often ignored
for _ in $(seq 300); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$APP_PID" 2>/dev/null; then cat "$WORK/gui.log" >&2; fail "the app did not quit within 30 s of Ctrl+Q"; fi
wait "$APP_PID" && rc=0 || rc=$?
APP_PID=""
[[ $rc == 0 ]] || { cat "$WORK/gui.log" >&2; fail "the app exited with $rc after Ctrl+Q"; }
TIMINGS+=("quit after Ctrl+Q: $(since "$t") s")

# -- 2. index --------------------------------------------------------------------------------------
step "indexing $MEDIA ($EXPECTED files)"
t=$(now)
"${APPENV[@]}" "$APP" index "$MEDIA" --library "$LIB" --json >"$WORK/index.json" 2>"$WORK/index.log" \
    || { cat "$WORK/index.log" >&2; fail "FastSlow index exited non-zero"; }
TIMINGS+=("index $EXPECTED files: $(since "$t") s (incl. start-up and model load)")
json_check "$WORK/index.json" "d['indexed'] == $EXPECTED and d['failed'] == 0" \
    "expected $EXPECTED files indexed and none failed"
cat "$WORK/index.json"

# -- 3. search -------------------------------------------------------------------------------------
step 'searching "a red circle"'
t=$(now)
"${APPENV[@]}" "$APP" search "a red circle" --library "$LIB" --json >"$WORK/search.json" 2>"$WORK/search.log" \
    || { cat "$WORK/search.log" >&2; fail "FastSlow search exited non-zero"; }
TIMINGS+=("search: $(since "$t") s (incl. start-up and model load)")
json_check "$WORK/search.json" \
    "d['results'] and all(os.path.isfile(r['path']) and r['path'].startswith('$MEDIA/') for r in d['results'])" \
    "the search returned no results, or results outside the media folder"
cat >"$WORK/summary.py" <<'PYEOF'
import json, sys
d = json.loads(open(sys.argv[1]).read())
top, t = d["results"][0], d["timing"]
print(f"   {len(d['results'])} results; best {top['path']} (score {top['score']:.3f})")
print(f"   in-app query time: fast {t['fast_ms']:.0f} ms + slow re-rank {t['slow_ms']:.0f} ms")
PYEOF
"$PY" "$WORK/summary.py" "$WORK/search.json" | tee "$WORK/summary.txt"
TIMINGS+=("$(tail -1 "$WORK/summary.txt" | sed 's/^ *//')")

# -- 4. the offline demo, with the bundle inside the app ----------------------------------------------
step "FastSlow demo --no-gui (small)"
t=$(now)
"${APPENV[@]}" "$APP" demo --no-gui --dir "$WORK/demo" --images 30 --videos 1 >"$WORK/demo.log" 2>&1 \
    || { cat "$WORK/demo.log" >&2; fail "FastSlow demo --no-gui exited non-zero"; }
"${APPENV[@]}" "$APP" status --library "$WORK/demo/library" --json >"$WORK/demo-status.json" 2>>"$WORK/demo.log" \
    || { cat "$WORK/demo.log" >&2; fail "FastSlow status exited non-zero"; }
json_check "$WORK/demo-status.json" "d['media'] == 31 and not d['failed']" "the demo library does not hold 31 files"
TIMINGS+=("demo --no-gui (30 photos, 1 video): $(since "$t") s")

echo "SMOKE CHECK PASSED ($APP)"
for t in "${TIMINGS[@]}"; do echo "  $t"; done
