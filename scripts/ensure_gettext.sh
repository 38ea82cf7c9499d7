#!/usr/bin/env bash
# The catalogue test (tests/test_korean_catalogue_covers_every_message.py) extracts the messages with Django's
# makemessages, which runs GNU gettext's xgettext and msguniq. Install the distribution's package when missing and
# we are allowed to. (Compiling the .po files needs no GNU gettext: scripts/compile_messages.py uses polib.)
set -euo pipefail
if command -v xgettext >/dev/null 2>&1 && command -v msguniq >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing gettext from the system packages (the catalogue test extracts messages with xgettext)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null
else
    echo "The catalogue test needs GNU gettext (xgettext, msguniq): install the 'gettext' package (root required)." >&2
    exit 1
fi
