"""Every message the templates, the Python code and the scripts ask to translate has a Korean translation: present in
locale/ko, not empty, not fuzzy, with the same placeholders as the English. The messages are extracted the way
`manage.py makemessages` does (GNU xgettext), from a copy of the sources, so this test never rewrites the .po files;
`python scripts/missing_translations.py` prints the same list by hand."""

from __future__ import annotations

import sys

import polib
import pytest
from django.conf import settings

sys.path.insert(0, str(settings.BASE_DIR / "scripts"))
try:
    from missing_translations import Extraction, check_catalogue, extract_messages
finally:
    sys.path.pop(0)


@pytest.fixture(scope="module")
def extraction() -> Extraction:
    return extract_messages()


def test_the_extraction_finds_the_messages_of_templates_python_and_scripts(extraction: Extraction) -> None:
    def files(domain: str) -> set[str]:
        return {path for entry in extraction.entries[domain] for path, _line in entry.occurrences}

    django_files, js_files = files("django"), files("djangojs")
    assert "templates/base.html" in django_files  # {% translate %}
    assert any(path.startswith("templates/datasets/email/") for path in django_files)  # plain-text e-mails
    assert "datasets/choices.py" in django_files and "jobs/choices.py" in django_files  # gettext_lazy choices
    assert {"static/js/run.js", "static/js/cohort_builder.js"} <= js_files  # _(...) in the scripts
    msgids = {entry.msgid for entry in extraction.entries["django"]}
    assert "Concepts" in msgids and "Sign out" in msgids
    # {% blocktranslate count %} comes with its plural form.
    assert any(entry.msgid_plural for entry in extraction.entries["django"])


def test_every_message_has_a_korean_translation_that_is_not_fuzzy(extraction: Extraction) -> None:
    problems = check_catalogue(extraction)
    assert not problems, f"{len(problems)} message(s) lack Korean:\n" + "\n".join(sorted(map(str, problems)))


def test_the_check_catches_a_missing_an_empty_a_fuzzy_and_a_wrong_placeholder_translation(tmp_path) -> None:
    catalogue_dir = tmp_path / "ko" / "LC_MESSAGES"
    catalogue_dir.mkdir(parents=True)
    catalogue = polib.POFile()
    catalogue.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=1; plural=0;"}
    catalogue.append(polib.POEntry(msgid="Empty", msgstr=""))
    catalogue.append(polib.POEntry(msgid="Guess", msgstr="추측", flags=["fuzzy"]))
    catalogue.append(polib.POEntry(msgid="Hello %(name)s", msgstr="안녕하세요 %(user)s"))
    catalogue.append(polib.POEntry(msgid="{n} sites", msgstr="기관 {n}곳"))
    catalogue.append(
        polib.POEntry(
            msgid="%(counter)s site", msgid_plural="%(counter)s sites", msgstr_plural={0: "기관 %(counter)s곳"}
        )
    )
    catalogue.save(str(catalogue_dir / "django.po"))
    wanted = [
        polib.POEntry(msgid=msgid, occurrences=[("templates/x.html", "1")])
        for msgid in ("Missing", "Empty", "Guess", "Hello %(name)s", "{n} sites")
    ]
    wanted.append(polib.POEntry(msgid="%(counter)s site", msgid_plural="%(counter)s sites"))
    problems = check_catalogue(Extraction(entries={"django": wanted}), locale_dir=tmp_path)
    assert {(p.msgid, p.why.split(" (")[0]) for p in problems} == {
        ("Missing", "missing"),
        ("Empty", "empty translation"),
        ("Guess", "fuzzy"),
        ("Hello %(name)s", "placeholders differ"),
    }
    assert "templates/x.html: missing: 'Missing'" in {str(p) for p in problems}
