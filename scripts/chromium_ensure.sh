#!/usr/bin/env bash
# Make sure headless Chromium from Debian's packages is installed for the browser tests
# (tests/browser), with a font that has Chinese glyphs so zh-CN screenshots are readable.
#
# Idempotent: when /usr/bin/chromium runs and the font is there it only reports the version.
# Otherwise it installs them as root via apt-get (one `apt-get update` first). Playwright
# drives this browser through executable_path; it never downloads a browser of its own.
set -euo pipefail

readonly CHROMIUM=/usr/bin/chromium
readonly PACKAGES=(chromium fonts-wqy-microhei)
readonly FONT_FILE=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

log() { printf 'chromium_ensure: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian's wrapper script is noisy on stderr in containers; only its version line matters.
chromium_version() { "$CHROMIUM" --version 2>/dev/null | head -n 1; }

ready() { [ -x "$CHROMIUM" ] && [ -f "$FONT_FILE" ] && chromium_version >/dev/null; }

main() {
    if ready; then
        printf 'chromium_ensure: %s ready at %s\n' "$(chromium_version)" "$CHROMIUM"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "$CHROMIUM (or its CJK font) is missing and installing needs root"
    log "installing ${PACKAGES[*]} from Debian packages"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 \
        "${PACKAGES[@]}"
    ready || die "$CHROMIUM still not usable after apt-get install"
    printf 'chromium_ensure: %s ready at %s\n' "$(chromium_version)" "$CHROMIUM"
}

main "$@"
