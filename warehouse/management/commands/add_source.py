"""Register a site's OMOP CDM warehouse (a Source)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from warehouse.choices import EngineKind
from warehouse.management.commands.attach_source import attach_and_report
from warehouse.services import source_create


class Command(BaseCommand):
    help = (
        "Register a warehouse: add_source KEY --engine postgresql --url postgresql://USER@HOST:PORT/DB, "
        "--engine duckdb --url duckdb:////abs/file.duckdb, or --engine spark --url sc://HOST:PORT (Spark Connect; "
        "the schemas are those of the session's catalog). The password (a Spark cluster's token) is never part of "
        "the URL: set SOYANG_SOURCE_<KEY>_PASSWORD or SOYANG_SOURCE_<KEY>_PASSWORD_FILE (for Spark also "
        "SOYANG_SPARK_TOKEN) where the worker runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="lower-case key of the site, e.g. hospital_a")
        parser.add_argument("--engine", required=True, choices=EngineKind.values)
        parser.add_argument("--url", required=True)
        parser.add_argument("--name", default=None)
        parser.add_argument("--cdm-schema", default="cdm")
        parser.add_argument("--vocabulary-schema", default=None, help="defaults to the CDM schema")
        parser.add_argument("--results-schema", default="results")
        parser.add_argument(
            "--attach",
            action="store_true",
            help="the CDM already exists (not loaded by Soyang): check and attach it now, as attach_source does; "
            "when it cannot be attached, the source is not added either",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # One portal transaction: with --attach, a CDM that cannot be attached leaves no source behind.
        with transaction.atomic():
            source = self._create(options)
            if options["attach"]:
                attach_and_report(self, source)
        self.stdout.write(f"added source {source.key} ({source.engine}, {source.url})")

    def _create(self, options: dict[str, Any]) -> Any:
        try:
            return source_create(
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


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    return list(exc.messages)
