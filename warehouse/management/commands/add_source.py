"""Register a site's OMOP CDM warehouse (a Source)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from warehouse.choices import EngineKind
from warehouse.services import source_create


class Command(BaseCommand):
    help = (
        "Register a warehouse: add_source KEY --engine postgresql --url postgresql://USER@HOST:PORT/DB, or "
        "--engine duckdb --url duckdb:////abs/file.duckdb. The password is never part of the URL: set "
        "SOYANG_SOURCE_<KEY>_PASSWORD or SOYANG_SOURCE_<KEY>_PASSWORD_FILE where the worker runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="lower-case key of the site, e.g. hospital_a")
        parser.add_argument("--engine", required=True, choices=EngineKind.values)
        parser.add_argument("--url", required=True)
        parser.add_argument("--name", default=None)
        parser.add_argument("--cdm-schema", default="cdm")
        parser.add_argument("--vocabulary-schema", default=None, help="defaults to the CDM schema")
        parser.add_argument("--results-schema", default="results")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = source_create(
                key=options["key"],
                engine=options["engine"],
                url=options["url"],
                name=options["name"],
                cdm_schema=options["cdm_schema"],
                vocabulary_schema=options["vocabulary_schema"],
                results_schema=options["results_schema"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(_messages(exc))) from exc
        self.stdout.write(f"added source {source.key} ({source.engine}, {source.url})")


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    return list(exc.messages)
