#!/usr/bin/env bash
# Browser tests drive the system Chromium (/usr/bin/chromium) with Playwright; the browser itself is never
# downloaded at test time. Install it from the distribution's packages when missing and we are allowed to.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium and chromium-driver from the system packages (browser tests need them)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
    echo "The browser tests need Chromium at /usr/bin/chromium: install the 'chromium' package (root required)." >&2
    exit 1
fi
