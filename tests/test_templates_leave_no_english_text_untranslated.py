"""No template shows English text outside {% translate %} / {% blocktranslate %}: once the template tags, variables,
comments, scripts and HTML tags are taken out, what is left of every template holds no English word (a short list of
names that stay as they are aside), and the attributes a person reads (placeholder, title, aria-label, alt) are
translated too. Together with tests/test_korean_catalogue_covers_every_message.py this keeps every page Korean."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

TEMPLATES = settings.BASE_DIR / "templates"
# Pages that are not the portal's own words: the error page of last resort is static and bilingual by design (it
# must render when nothing else does), and the API documentation viewers are third-party pages.
EXEMPT = {"500.html", "api/redoc.html", "api/swagger_ui.html"}
KEPT = {"Soyang", "CSV", "JSON", "ATLAS", "IRB", "API", "CDM", "OMOP", "Redoc", "Swagger", "UI"}
STRIPPED = [
    re.compile(r"{%\s*(block)?translate\b.*?{%\s*end(block)?translate\s*%}", re.S),
    re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S),
    re.compile(r"{#.*?#}", re.S),
    re.compile(r"<script\b.*?</script>", re.S),
    re.compile(r"<code\b.*?</code>", re.S),
]
READ_ATTRIBUTES = re.compile(r'\b(?:placeholder|title|aria-label|alt)="([^"]*)"')
WORD = re.compile(r"[A-Za-z][A-Za-z_'’-]+")


def english_in(text: str) -> list[str]:
    # snake_case words are identifiers (OMOP columns such as person_id), the same in every language.
    return [word for word in WORD.findall(text) if word not in KEPT and "_" not in word]


def untranslated(path: Path) -> list[str]:
    source = path.read_text()
    # {% translate "x" %} is one tag: drop it before the paired blocks so that a lone tag does not open a pair.
    text = re.sub(r"{%\s*translate\s+.*?%}", "", source)
    for pattern in STRIPPED:
        text = pattern.sub("", text)
    found = []
    for value in READ_ATTRIBUTES.findall(re.sub(r"{%.*?%}|{{.*?}}", "", text)):
        if english_in(value):
            found.append(f'attribute "{value}"')
    text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
    text = re.sub(r"{%.*?%}|{{.*?}}", " ", text, flags=re.S)
    found.extend(f"text {' '.join(english_in(line))!r}" for line in text.splitlines() if english_in(line))
    return found


def test_every_template_keeps_its_english_inside_translate_tags() -> None:
    problems = {
        str(path.relative_to(TEMPLATES)): found
        for path in sorted(TEMPLATES.rglob("*"))
        if path.suffix in (".html", ".txt")
        and str(path.relative_to(TEMPLATES)) not in EXEMPT
        and (found := untranslated(path))
    }
    assert not problems, "Untranslated English in templates:\n" + "\n".join(
        f"{name}: {', '.join(found)}" for name, found in problems.items()
    )


def test_the_check_sees_plain_text_and_read_attributes(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '{% load i18n %}<h1>{% translate "Projects" %}</h1>\n<p>Open a project</p>\n'
        '<input placeholder="Search name">\n<input placeholder="{% translate \'Search\' %}" value="draft">\n'
        "{% blocktranslate with n=3 %}{{ n }} sites{% endblocktranslate %} <code>person_id</code> CSV"
    )
    assert untranslated(page) == ['attribute "Search name"', "text 'Open project'"]
