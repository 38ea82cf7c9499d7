"""List every message the portal's code asks to translate that the Korean catalogue lacks, leaves empty or fuzzy.

The messages are extracted by Django's own `makemessages` (GNU xgettext underneath, as in any Django project):
templates ({% translate %}, {% blocktranslate %} with plural/with/trimmed forms), Python (gettext, gettext_lazy,
_, pgettext, ngettext, …) for the `django` domain, and static/js (gettext(...), _(...)) for `djangojs`. It runs on
a throw-away copy of the sources, so the committed .po files are never rewritten. `make test` runs it through
tests/test_korean_catalogue_covers_every_message.py; run it by hand to see what is left to translate:

    python scripts/missing_translations.py          # prints "<file>: <msgid>" lines; exit status 1 if any
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "locale"
DOMAINS = ("django", "djangojs")
# Build output, caches and data: nothing a user reads is written there.
IGNORED = (".git", ".venv", "var", "node_modules", "staticfiles", "locale", "__pycache__", "*.mo", "*.po", "*.duckdb")
# printf-style (%(name)s, %s, %d) and str.format-style ({name}) placeholders; a translation keeps every one.
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%[sdif]|\{\w*\}")


@dataclass(frozen=True)
class Problem:
    """One message of the code that the Korean catalogue does not translate (or translates wrongly)."""

    domain: str
    msgid: str
    files: tuple[str, ...]
    why: str
    context: str | None = None

    def __str__(self) -> str:
        where = ", ".join(self.files) or "?"
        context = f" [context {self.context!r}]" if self.context else ""
        return f"{where}: {self.why}: {self.msgid!r}{context}"


@dataclass
class Extraction:
    """The messages extracted per domain, each a polib entry whose occurrences name the files that use it."""

    entries: dict[str, list[polib.POEntry]] = field(default_factory=dict)


def extract_messages(root: Path = ROOT) -> Extraction:
    """Run `manage.py makemessages -l ko` for both domains on a copy of ``root``; return the extracted entries."""
    if shutil.which("xgettext") is None or shutil.which("msguniq") is None:
        raise RuntimeError(
            "GNU gettext (xgettext, msguniq) is needed to extract messages: apt-get install gettext "
            "(`make test` installs it when run as root)."
        )
    extraction = Extraction()
    with tempfile.TemporaryDirectory(prefix="soyang-messages-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(*IGNORED), symlinks=False)
        (copy / "locale").mkdir()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "portal.settings.test")}
        for domain in DOMAINS:
            # makemessages walks the current directory; in the copy, LOCALE_PATHS (BASE_DIR/locale) is the copy's.
            subprocess.run(
                [sys.executable, "manage.py", "makemessages", "--locale", "ko", "--domain", domain, "--verbosity", "0"]
                + (["--extension", "html,txt,py"] if domain == "django" else ["--extension", "js"]),
                cwd=copy,
                env=env,
                check=True,
                capture_output=True,
            )
            po_path = copy / "locale" / "ko" / "LC_MESSAGES" / f"{domain}.po"
            extraction.entries[domain] = list(polib.pofile(str(po_path))) if po_path.exists() else []
    return extraction


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def check_catalogue(extraction: Extraction, locale_dir: Path = LOCALE_DIR) -> list[Problem]:
    """Every extracted message must be in locale/ko with a non-empty, non-fuzzy translation keeping its
    placeholders (each plural form too)."""
    problems = []
    for domain, entries in extraction.entries.items():
        catalogue = polib.pofile(str(locale_dir / "ko" / "LC_MESSAGES" / f"{domain}.po"))
        known = {(entry.msgctxt, entry.msgid): entry for entry in catalogue if not entry.obsolete}
        for wanted in entries:
            files = tuple(sorted({path for path, _line in wanted.occurrences}))
            found = known.get((wanted.msgctxt, wanted.msgid))

            def problem(
                why: str, domain: str = domain, wanted: polib.POEntry = wanted, files: tuple[str, ...] = files
            ) -> Problem:
                return Problem(domain, wanted.msgid, files, why, wanted.msgctxt)

            if found is None:
                problems.append(problem("missing"))
                continue
            if "fuzzy" in found.flags:
                problems.append(problem("fuzzy"))
                continue
            if wanted.msgid_plural:
                translations = [text for _n, text in sorted(found.msgstr_plural.items())]
                sources = [wanted.msgid_plural] * len(translations)
                if not found.msgid_plural:
                    problems.append(problem("no plural form"))
                    continue
            else:
                translations, sources = [found.msgstr], [wanted.msgid]
            if not translations or not all(text.strip() for text in translations):
                problems.append(problem("empty translation"))
                continue
            for source, text in zip(sources, translations, strict=True):
                # A plural's Korean form may name the count or not; singular-only Korean forms use the plural's.
                if placeholders(text) != placeholders(source) and placeholders(text) != placeholders(wanted.msgid):
                    problems.append(problem(f"placeholders differ ({placeholders(text)} for {placeholders(source)})"))
                    break
    return problems


def main() -> int:
    problems = check_catalogue(extract_messages())
    for problem in sorted(problems, key=str):
        print(problem)
    print(f"{len(problems)} message(s) to fix", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
