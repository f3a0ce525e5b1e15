#!/usr/bin/env bash
# Put FastSlow in the Linux desktop's launcher: installs resources/fastslow.desktop (its Exec pointing at
# the built app or at the pip-installed `fastslow`) and the icon, for the current user.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: packaging/install-desktop-entry.sh [--app PATH | --pip] [--uninstall]

  --app PATH    the executable the launcher runs (default: dist/FastSlow/FastSlow when it has been
                built, else the `fastslow` found on PATH)
  --pip         use the pip-installed `fastslow` on PATH even if a build exists
  --uninstall   remove what this script installed
Installs into ${XDG_DATA_HOME:-~/.local/share}: applications/fastslow.desktop and
icons/hicolor/{256x256,scalable}/apps/fastslow.{png,svg}. Validates the entry with
desktop-file-validate when it is installed (apt-get install desktop-file-utils).
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RES="$REPO/resources"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICON_PNG="$DATA/icons/hicolor/256x256/apps/fastslow.png"
ICON_SVG="$DATA/icons/hicolor/scalable/apps/fastslow.svg"
APP="" MODE="auto" UNINSTALL=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --app) APP=$2; MODE=app; shift 2 ;;
        --pip) MODE=pip; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-desktop-entry: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

refresh_caches() {
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" 2>/dev/null || true
}

if [[ $UNINSTALL == 1 ]]; then
    rm -f "$APPS/fastslow.desktop" "$ICON_PNG" "$ICON_SVG"
    refresh_caches
    echo "removed the FastSlow launcher entry and icons from $DATA"
    exit 0
fi

if [[ $MODE == auto && -x "$REPO/dist/FastSlow/FastSlow" ]]; then
    APP="$REPO/dist/FastSlow/FastSlow"
elif [[ $MODE != app ]]; then
    APP=$(command -v fastslow || true)
    # A pyenv shim only works in a shell set up for pyenv; the launcher needs the real script.
    if [[ "$APP" == */shims/fastslow ]] && command -v pyenv >/dev/null; then APP=$(pyenv which fastslow 2>/dev/null || echo "$APP"); fi
    [[ -n "$APP" ]] || { echo "install-desktop-entry: no build in dist/FastSlow and no \`fastslow\` on PATH: run python packaging/build.py or pip install ." >&2; exit 2; }
fi
[[ -x "$APP" ]] || { echo "install-desktop-entry: $APP is not an executable" >&2; exit 2; }
APP=$(cd "$(dirname "$APP")" && pwd)/$(basename "$APP")

# Exec and TryExec take the absolute path (quoted, as the Desktop Entry spec asks, if it has spaces or quotes);
# everything else is resources/fastslow.desktop as committed.
quoted=$APP
if [[ "$APP" =~ [[:space:]\"\'\\\`\$] ]]; then
    quoted=$(printf '%s' "$APP" | sed -e 's/[\\"`$]/\\\\&/g')
    quoted="\"$quoted\""
fi
mkdir -p "$APPS" "$(dirname "$ICON_PNG")" "$(dirname "$ICON_SVG")"
tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
tmp="$tmpdir/fastslow.desktop"
APP_FOR_SED=$(printf '%s' "$quoted" | sed -e 's/[&|\\]/\\&/g')
TRY_FOR_SED=$(printf '%s' "$APP" | sed -e 's/[&|\\]/\\&/g')
# Qt names a window's WM_CLASS instance after the executable (FastSlow for the build, fastslow for pip);
# the launcher matches StartupWMClass against it to put the window under the launcher's icon.
WMCLASS_FOR_SED=$(basename "$APP" | sed -e 's/[&|\\]/\\&/g')
sed -e "s|^Exec=[^ ]*|Exec=$APP_FOR_SED|" -e "s|^TryExec=.*|TryExec=$TRY_FOR_SED|" \
    -e "s|^StartupWMClass=.*|StartupWMClass=$WMCLASS_FOR_SED|" "$RES/fastslow.desktop" >"$tmp"
chmod 644 "$tmp"
if command -v desktop-file-validate >/dev/null; then
    if ! desktop-file-validate "$tmp"; then
        echo "install-desktop-entry: the entry does not validate (see above); nothing installed" >&2
        exit 1
    fi
    validated="validated with desktop-file-validate"
else
    validated="not validated (desktop-file-validate is not installed: apt-get install desktop-file-utils)"
fi
mv "$tmp" "$APPS/fastslow.desktop"
install -m644 "$RES/icons/fastslow.png" "$ICON_PNG"
install -m644 "$RES/icons/fastslow.svg" "$ICON_SVG"
refresh_caches
echo "installed $APPS/fastslow.desktop (Exec=$quoted; $validated)"
echo "installed $ICON_PNG and $ICON_SVG"
