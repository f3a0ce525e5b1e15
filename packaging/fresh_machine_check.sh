#!/usr/bin/env bash
# Fresh-machine check, for contributors before a release: clone the repository into a throwaway folder,
# make a new virtual environment, and run the README's two quick-start commands exactly as written.
#
# The first command ends in `fastslow demo`, which opens the app: it runs under Xvfb, passes when the
# window named FastSlow appears (then it is closed with Ctrl+Q and must exit 0). The second runs the
# test suite. Reports pass/fail and the time of each step; exits non-zero if any step fails.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: packaging/fresh_machine_check.sh [--repo PATH|URL] [--python PY] [--only 1|2] [--no-gui]
                                        [--bundle DIR] [--timeout S] [--keep]

  --repo R      what to clone (default: this checkout; only committed work is cloned)
  --python PY   the interpreter for the new virtual environment (default: python3; needs 3.11+)
  --only N      run only quick-start command N
  --no-gui      run the app command as `fastslow demo --no-gui` instead of opening the window
  --bundle DIR  copy DIR into the clone's resources/models/synthscenes/ when the clone has none
                (for trying the check before the demo bundle is committed; not a release check)
  --timeout S   limit for each command in seconds (default: 3600)
  --keep        keep the throwaway folder
  --print-commands  print the README commands the check runs, and exit
Needs git; for the app command Xvfb, xwininfo (x11-utils) and xdotool unless --no-gui.
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_SRC=$HERE
PY=python3
ONLY=""
NO_GUI=0
BUNDLE=""
LIMIT=3600
KEEP=0
PRINT=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --repo) REPO_SRC=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-gui) NO_GUI=1; shift ;;
        --bundle) BUNDLE=$(cd "$2" && pwd); shift 2 ;;
        --timeout) LIMIT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --print-commands) PRINT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fresh_machine_check: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

readme_commands() {  # the lines of the first code block under "## Quick start", without trailing comments
    awk '
        /^## Quick start/ { section = 1; next }
        section && /^## / { exit }
        section && /^```/ { if (block) exit; block = 1; next }
        block { sub(/[ \t]+#[^"'\'']*$/, ""); if (length($0)) print }
    ' "$1"
}

if [[ $PRINT == 1 ]]; then  # what would run, from this checkout's README
    readme_commands "$HERE/README.md"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastslow-fresh.XXXXXX")
XVFB_PID=""
cleanup() {
    [[ -n "$XVFB_PID" ]] && kill "$XVFB_PID" 2>/dev/null
    if [[ $KEEP == 1 ]]; then echo "throwaway folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

declare -a REPORT=()
FAILED=0
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
record() { REPORT+=("$1"); echo "== $1"; }
finish() {
    echo
    echo "fresh-machine check of $REPO_SRC ($(date -u +%FT%TZ)):"
    for line in "${REPORT[@]}"; do echo "  $line"; done
    if [[ $FAILED == 0 ]]; then echo "FRESH-MACHINE CHECK PASSED"; else echo "FRESH-MACHINE CHECK FAILED"; fi
    exit "$FAILED"
}

if [[ -d "$REPO_SRC/.git" ]] && [[ -n "$(git -C "$REPO_SRC" status --porcelain --untracked-files=no)" ]]; then
    echo "note: $REPO_SRC has uncommitted changes; the clone has only what is committed"
fi

# -- clone and a new virtual environment ------------------------------------------------------------
t=$(now)
if ! git clone --quiet "$REPO_SRC" "$WORK/fastslow" 2>"$WORK/clone.log"; then
    cat "$WORK/clone.log" >&2; record "clone: FAILED"; FAILED=1; finish
fi
record "clone: ok in $(since "$t") s ($(git -C "$WORK/fastslow" log -1 --format='%h %s' | cut -c1-70))"
CLONE="$WORK/fastslow"
if [[ ! -f "$CLONE/resources/models/synthscenes/manifest.json" ]]; then
    if [[ -n "$BUNDLE" ]]; then
        mkdir -p "$CLONE/resources/models" && cp -r "$BUNDLE" "$CLONE/resources/models/synthscenes"
        record "demo bundle: not committed; copied from $BUNDLE (--bundle: NOT a release check)"
    else
        record "demo bundle: resources/models/synthscenes/ is not committed (fastslow demo will fail)"
    fi
fi

t=$(now)
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    record "venv: FAILED ($PY is not Python 3.11+)"; FAILED=1; finish
fi
if ! "$PY" -m venv "$WORK/venv" >"$WORK/venv.log" 2>&1; then
    cat "$WORK/venv.log" >&2; record "venv: FAILED"; FAILED=1; finish
fi
record "venv: ok in $(since "$t") s ($("$WORK/venv/bin/python" --version))"

# A fresh machine's user: nothing of this checkout's environment, app data in the throwaway folder.
# (XDG_CACHE_HOME stays: pip's wheel cache is where this machine keeps torch.)
mkdir -p "$WORK/config" "$WORK/data" "$WORK/cache"
[[ -d "${XDG_CONFIG_HOME:-$HOME/.config}/pip" ]] && cp -r "${XDG_CONFIG_HOME:-$HOME/.config}/pip" "$WORK/config/pip"
ENV=(env -u PYTHONPATH -u PYTHONHOME -u FASTSLOW_LIBRARY -u FASTSLOW_RESOURCES -u FASTSLOW_CACHE -u CONDA_PREFIX
     "VIRTUAL_ENV=$WORK/venv" "PATH=$WORK/venv/bin:/usr/local/bin:/usr/bin:/bin"
     "XDG_CONFIG_HOME=$WORK/config" "XDG_DATA_HOME=$WORK/data" "FASTSLOW_CACHE=$WORK/cache")

# -- the README's quick-start commands ---------------------------------------------------------------
mapfile -t COMMANDS < <(readme_commands "$CLONE/README.md")
if [[ ${#COMMANDS[@]} -ne 2 ]]; then
    record "README: FAILED (expected two commands in the Quick start block, found ${#COMMANDS[@]})"; FAILED=1; finish
fi

start_xvfb() {
    [[ -n "$XVFB_PID" ]] && return 0
    for tool in Xvfb xwininfo xdotool; do
        command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install xvfb x11-utils xdotool)" >&2; return 1; }
    done
    Xvfb -displayfd 5 -screen 0 1400x900x24 -nolisten tcp -noreset 5>"$WORK/display" 2>"$WORK/xvfb.log" &
    XVFB_PID=$!
    for _ in $(seq 100); do [[ -s "$WORK/display" ]] && break; sleep 0.1; done
    [[ -s "$WORK/display" ]] || return 1
    DISPLAY_NUM=":$(head -1 "$WORK/display")"
}

run_app_command() {  # $1 = number, $2 = command; the app window must appear, then Ctrl+Q must end it
    local n=$1 cmd=$2 log="$WORK/command$1.log" t pid window="" rc shown=""
    start_xvfb || { record "command $n: FAILED (no Xvfb)"; FAILED=1; return; }
    t=$(now)
    (cd "$CLONE" && exec timeout --kill-after=10 "$LIMIT" "${ENV[@]}" "DISPLAY=$DISPLAY_NUM" QT_QPA_PLATFORM=xcb \
        bash -c "$cmd") >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        window=$(DISPLAY=$DISPLAY_NUM xwininfo -name FastSlow 2>/dev/null | awk '/Window id:/ { print $4; exit }')
        if [[ -n "$window" ]]; then
            shown=$(since "$t")
            sleep 5
            DISPLAY=$DISPLAY_NUM xdotool windowfocus --sync "$window" 2>/dev/null
            DISPLAY=$DISPLAY_NUM xdotool key ctrl+q  # XTEST, like a keyboard: sent events are often ignored
            for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && { echo "the app did not quit within 60 s of Ctrl+Q" >>"$log"; kill "$pid"; }
            break
        fi
        sleep 0.5
    done
    wait "$pid"; rc=$?
    if [[ -n "$shown" && $rc == 0 ]]; then
        record "command $n: PASSED in $(since "$t") s — \`$cmd\` (window after ${shown} s, closed with Ctrl+Q)"
    else
        tail -30 "$log" >&2
        local why="exit $rc"; [[ -z "$shown" ]] && why="$why, no window named FastSlow"; [[ $rc == 124 ]] && why="timed out after $LIMIT s"
        record "command $n: FAILED in $(since "$t") s — \`$cmd\` ($why; log: $log)"; FAILED=1
    fi
}

run_command() {  # $1 = number, $2 = command
    local n=$1 cmd=$2 log="$WORK/command$1.log" t rc summary
    t=$(now)
    (cd "$CLONE" && timeout --kill-after=10 "$LIMIT" "${ENV[@]}" bash -c "$cmd") >"$log" 2>&1; rc=$?
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' "$log" | tail -1)
    if [[ $rc == 0 ]]; then
        record "command $n: PASSED in $(since "$t") s — \`$cmd\`${summary:+ ($summary)}"
    else
        tail -30 "$log" >&2
        record "command $n: FAILED in $(since "$t") s — \`$cmd\` (exit $rc${summary:+; $summary}; log: $log)"; FAILED=1
    fi
}

for i in 0 1; do
    n=$((i + 1)) cmd=${COMMANDS[$i]}
    [[ -n "$ONLY" && "$ONLY" != "$n" ]] && continue
    if [[ "$cmd" =~ fastslow\ demo ]]; then
        if [[ $NO_GUI == 1 ]]; then run_command "$n" "${cmd/fastslow demo/fastslow demo --no-gui}"
        else run_app_command "$n" "$cmd"; fi
    else
        run_command "$n" "$cmd"
    fi
done
[[ $KEEP == 1 ]] || { [[ $FAILED == 1 ]] && { KEEP=1; echo "(kept the throwaway folder for the logs)"; }; }
finish
