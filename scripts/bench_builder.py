"""Time the builder's Count in a real browser: click → the number on screen, on a demo-like portal.

    .venv/bin/python scripts/bench_builder.py                      # Redis when one answers, else the filesystem
    .venv/bin/python scripts/bench_builder.py --broker filesystem --edits 20 --hits 10

What ``make run`` runs, in a directory of its own (``--var-dir``, default ``var/bench-builder``; made on first
use and reused): a SQLite portal database, the 10,000-person synthetic DuckDB warehouse of ``demo_setup``, one
Celery worker on the demo site's queue (``--concurrency 1``) and Django's development server on a free port. The
broker is ``--broker-url``, else Redis on localhost (database 14) when it answers and ``--broker`` allows, else
Celery's filesystem transport under the directory.

The system Chromium (headless, driven by Playwright) signs in as the demo researcher, opens the builder on a
definition of the demo project (type 2 diabetes, metformin in the year before) and, ``--edits`` times, changes
one number of the draft (the days that join cohort periods), waits for the builder's description of it, and
clicks Count: each edit is a draft never counted before, so each count runs on the worker. Then ``--hits`` times
it goes back to a draft counted already and clicks Count: the result cache answers. The time is measured in the
page, from the click to the number shown with the state "finished". For the uncached counts it also reads from
the portal database where the time went: the POST until the request was written, the wait for the worker
(commit, broker, pick-up), the worker's work (claim, count, record), and the rest (the page's next poll). Prints
p50 and p95 of each.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PY = sys.executable
CHROMIUM = Path("/usr/bin/chromium")
DEFINITION_NAME = "Bench: T2DM on metformin"
T2DM, METFORMIN = 201826, 1503297

#: Times the page records: milliseconds from the click to the finished number, and the click's wall clock.
MEASURE_JS = """() => new Promise((resolve) => {
  const state = document.querySelector("[data-field=count-state]");
  const total = document.querySelector("[data-field=total]");
  const clicked = Date.now();
  const t0 = performance.now();
  const done = () => state.textContent.startsWith("finished") && /\\d/.test(total.textContent);
  const observer = new MutationObserver(() => {
    if (done()) {
      observer.disconnect();
      resolve({ ms: performance.now() - t0, clicked: clicked, total: total.textContent });
    }
  });
  const options = { childList: true, characterData: true, subtree: true, attributes: true };
  observer.observe(state.closest("[data-region=count]"), options);
  document.querySelector("[data-action=count]").click();
})"""


def _expression() -> dict[str, Any]:
    def concept_set(codeset_id: int, name: str, concept_id: int) -> dict[str, Any]:
        item = {"concept": {"CONCEPT_ID": concept_id}, "isExcluded": False, "includeDescendants": True}
        return {"id": codeset_id, "name": name, "expression": {"items": [item]}}

    window = {"Start": {"Days": 365, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}}
    return {
        "ConceptSets": [concept_set(0, "Type 2 diabetes", T2DM), concept_set(1, "Metformin", METFORMIN)],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "QualifiedLimit": {"Type": "First"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": [
            {
                "name": "Metformin in the year before",
                "expression": {
                    "Type": "ALL",
                    "CriteriaList": [
                        {
                            "Criteria": {"DrugExposure": {"CodesetId": 1}},
                            "StartWindow": window,
                            "Occurrence": {"Type": 2, "Count": 1},
                        }
                    ],
                    "DemographicCriteriaList": [],
                    "Groups": [],
                },
            }
        ],
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "CensorWindow": {},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _broker(args: argparse.Namespace, var_dir: Path) -> str:
    if args.broker_url:
        return str(args.broker_url)
    if args.broker in ("auto", "redis") and _redis_answers():
        return "redis://127.0.0.1:6379/14"
    if args.broker == "redis":
        sys.exit("No Redis answers on 127.0.0.1:6379.")
    return "filesystem://"


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PY, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _prepare(env: dict[str, str], var_dir: Path) -> str:
    """Migrate, make the demo (warehouse, accounts, project) and return the researcher's new password."""
    _manage(env, "migrate", "--noinput", "-v", "0")
    out = _manage(
        env, "demo_setup", "--reset-passwords", "--warehouse-url", f"duckdb:///{var_dir.resolve() / 'demo.duckdb'}"
    )
    found = re.search(r"^\s+researcher\s+\S+\s+(\S+)\s*$", out, re.MULTILINE)
    if found is None:
        sys.exit(f"demo_setup printed no password for the researcher:\n{out}")
    return found.group(1)


def _django(env: dict[str, str]) -> None:
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "SOYANG_VAR_DIR", "DATABASE_URL")})
    os.environ["CELERY_BROKER_URL"] = env["CELERY_BROKER_URL"]
    import django

    django.setup()


def _definition_pk() -> int:
    """The bench definition in the demo project, made once through the services (reset to the first draft)."""
    from accounts.models import Project, User
    from cohorts.definitions.models import CohortDefinition
    from cohorts.definitions.services import definition_create_for_user, definition_save_version
    from portal.management.commands.demo_setup import DEMO_PROJECT_TITLE

    researcher = User.objects.get(username="researcher")
    definition = CohortDefinition.objects.filter(owner=researcher, name=DEFINITION_NAME).first()
    if definition is None:
        definition = definition_create_for_user(
            owner=researcher,
            name=DEFINITION_NAME,
            expression=_expression(),
            project=Project.objects.get(title=DEMO_PROJECT_TITLE),
            description="scripts/bench_builder.py",
        )
    elif definition.latest_version().expression != _expression():
        definition_save_version(definition=definition, expression=_expression(), author=researcher, note="bench")
    return int(definition.pk)


def _wait_http(port: int, path: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    sys.exit(f"the web server did not answer on port {port} within {seconds:.0f} s")


def _wait_log(path: Path, text: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    sys.exit(f"the worker did not start within {seconds:.0f} s (see {path})")


def _start(stack: ExitStack, command: list[str], env: dict[str, str], log: Path) -> None:
    handle = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)


def _measure(page: Any, base: str, pk: int, password: str, edits: int, hits: int) -> dict[str, list[dict[str, Any]]]:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("User name or e-mail").fill("researcher")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto(f"{base}/cohorts/{pk}/edit/")
    page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()
    pad = page.locator("#exit-pad")

    def set_pad(days: int) -> None:
        with page.expect_response(lambda r: r.url.endswith("/builder/describe.json")):
            pad.fill(str(days))
            pad.dispatch_event("change")
        page.locator("[data-field=validity]").filter(has_text="Valid.").wait_for()

    # Each run of the bench counts drafts no earlier run counted: the pad days start past the last ones used.
    base_days = int(time.time()) % 100_000 * 100
    out: dict[str, list[dict[str, Any]]] = {"warm-up": [], "uncached": [], "cache hit": []}
    set_pad(base_days)
    out["warm-up"].append(page.evaluate(MEASURE_JS))
    for i in range(1, edits + 1):
        set_pad(base_days + i)
        out["uncached"].append(page.evaluate(MEASURE_JS))
    for i in range(hits):
        set_pad(base_days + 1 + i % edits)
        out["cache hit"].append(page.evaluate(MEASURE_JS))
    return out


def _breakdown(measured: list[dict[str, Any]], pk: int) -> dict[str, list[float]]:
    """Where the time of each uncached count went, from the portal's timestamps (same clock as the page's)."""
    from cohorts.runs.models import RunRequest

    requests = list(
        RunRequest.objects.filter(definition_id=pk, version__isnull=True)
        .prefetch_related("runs")
        .order_by("-created_at")[: len(measured) * 3]
    )
    phases: dict[str, list[float]] = {
        "POST → request written": [],
        "→ worker starts": [],
        "→ worker done": [],
        "→ number on screen": [],
    }
    for row in measured:
        at = datetime.fromtimestamp(row["clicked"] / 1000).astimezone()
        request = min((r for r in requests if r.created_at >= at), key=lambda r: r.created_at - at, default=None)
        runs = list(request.runs.all()) if request is not None else []
        if request is None or len(runs) != 1 or runs[0].started_at is None or runs[0].finished_at is None:
            continue
        run = runs[0]
        phases["POST → request written"].append((request.created_at - at).total_seconds() * 1000)
        phases["→ worker starts"].append((run.started_at - run.queued_at).total_seconds() * 1000)
        phases["→ worker done"].append((run.finished_at - run.started_at).total_seconds() * 1000)
        shown = row["clicked"] + row["ms"]
        phases["→ number on screen"].append(shown - run.finished_at.timestamp() * 1000)
    return phases


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} (none)"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{name:<28} n={len(values):<3} p50 {statistics.median(values):7.0f} ms   p95 {p95:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench-builder")
    parser.add_argument("--broker", choices=["auto", "redis", "filesystem"], default="auto")
    parser.add_argument("--broker-url", help="a broker URL to use instead (e.g. another Redis)")
    parser.add_argument("--edits", type=int, default=20, help="uncached counts, each of a new draft")
    parser.add_argument("--hits", type=int, default=10, help="counts of drafts counted already")
    parser.add_argument("--fresh", action="store_true", help="start from an empty --var-dir")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        sys.exit(f"the benchmark needs Chromium at {CHROMIUM}: run `make browser-deps`")

    var_dir = args.var_dir.resolve()
    if args.fresh and var_dir.exists():
        shutil.rmtree(var_dir)
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    broker = _broker(args, var_dir)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.local",
        "SOYANG_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'portal.sqlite3'}",
        "CELERY_BROKER_URL": broker,
        "STATIC_ROOT": str(var_dir / "staticfiles"),
    }
    print(f"Broker: {broker}; portal and warehouse under {var_dir}", flush=True)
    password = _prepare(env, var_dir)
    _django(env)
    pk = _definition_pk()
    from django.db import connections

    connections.close_all()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        worker_log = var_dir / "log" / "worker.log"
        worker = [PY, "-m", "celery", "-A", "worker", "worker", "-Q", "portal,site.demo", "--concurrency", "1"]
        _start(stack, [*worker, "--loglevel", "INFO", "--hostname", f"bench{port}@%h"], env, worker_log)
        _start(
            stack, [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env, var_dir / "log" / "web.log"
        )
        _wait_http(port, "/accounts/login/")
        _wait_log(worker_log, "ready.")

        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            results = _measure(page, base, pk, password, args.edits, args.hits)
            browser.close()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nCount click → number on screen ({args.edits} new drafts, {args.hits} cache hits; load {load}):")
    for name, rows in results.items():
        print(_row(name, [r["ms"] for r in rows]))
    print("\nWhere an uncached count's time goes (portal timestamps):")
    for name, values in _breakdown(results["uncached"], pk).items():
        print(_row(name, values))
    print(f"\nTotals shown: {', '.join(r['total'] for r in results['uncached'][:5])} …")


if __name__ == "__main__":
    main()
