"""Generate a site's perturbation table (ptable) from its parameters, and print what it costs in accuracy."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from disclosure.ptable import (
    DEFAULT_MAX_ADJUSTMENT,
    DEFAULT_THRESHOLD,
    DEFAULT_VARIANCE,
    PtableError,
    PtableParameters,
    generate_ptable,
    parse_ptable,
    ptable_file_name,
    ptable_summary,
)


class Command(BaseCommand):
    help = (
        "Write a ptable: make_ptable --max 3 --variance 2 --threshold 10 --out DIR_OR_FILE. A directory gets the "
        "versioned name (ptable-v2-D3-V2-k10.csv). Prints the mean absolute error, how often a count is exact, "
        "and how often the difference of two counts is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max", type=int, default=DEFAULT_MAX_ADJUSTMENT, help="maximum adjustment D")
        parser.add_argument("--variance", default=str(DEFAULT_VARIANCE), help="variance V, e.g. 2 or 3/2")
        parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="counts 1..k-1 are withheld")
        parser.add_argument("--out", required=True, help="file to write, or a directory for the versioned name")
        parser.add_argument("--force", action="store_true", help="replace an existing file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            variance = Fraction(options["variance"])
        except (ValueError, ZeroDivisionError):
            raise CommandError(f"--variance must be a number, not {options['variance']!r}") from None
        parameters = PtableParameters(max_adjustment=options["max"], variance=variance, threshold=options["threshold"])
        try:
            ptable = generate_ptable(parameters)
            text = ptable.to_csv()
            parse_ptable(text)  # what is written must load: the same validation as a site's worker applies
        except PtableError as exc:
            raise CommandError(str(exc)) from None
        out = Path(options["out"])
        if out.is_dir():
            out = out / ptable_file_name(parameters)
        if out.exists() and not options["force"]:
            raise CommandError(f"{out} exists: pass --force to replace it")
        out.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {out}")
        self.stdout.write(ptable_summary(ptable))
