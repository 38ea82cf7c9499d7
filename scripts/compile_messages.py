"""Compile every locale/<lang>/LC_MESSAGES/*.po into its .mo, with polib (pure Python: GNU gettext's msgfmt is not
needed on the machine): django.po for templates and Python, djangojs.po for static/js through /jsi18n/. Run by
`make run` and `make test`; the .mo files are build output and not committed.

Usage: python scripts/compile_messages.py [--check]   (--check: fail if a .po has an error or a fuzzy entry)
"""

from __future__ import annotations

import sys
from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def compile_all(locale_dir: Path = LOCALE_DIR, *, force: bool = False) -> list[Path]:
    """Write each .mo whose .po is newer (or all with ``force``); returns the .mo files written."""
    written = []
    for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        catalogue = polib.pofile(str(po_path))
        # Fuzzy entries are guesses a translator has not confirmed: gettext leaves them out, and so do we.
        for entry in catalogue.fuzzy_entries():
            catalogue.remove(entry)
        catalogue.save_as_mofile(str(mo_path))
        written.append(mo_path)
    return written


def main() -> int:
    if "--check" in sys.argv:
        problems = [
            f"{po}: fuzzy entry {entry.msgid!r}"
            for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))
            for entry in polib.pofile(str(po)).fuzzy_entries()
        ]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
    for mo in compile_all(force="--force" in sys.argv):
        print(f"compiled {mo.relative_to(LOCALE_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
