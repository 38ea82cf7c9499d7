#!/usr/bin/env bash
# The embedded demo behind `make run`: portal database (SQLite under var/ unless DATABASE_URL is set),
# a 10,000-person synthetic DuckDB warehouse made on first run, one demo account per role, a real Celery
# worker for the warehouse queries and the web server on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-portal.settings.local}
PY=.venv/bin/python
mkdir -p var/log

# The broker: REDIS_URL when set; else a Redis answering on localhost; else Celery's filesystem transport,
# so a real worker process still runs the queries on a machine without Redis.
if [ -z "${CELERY_BROKER_URL:-}" ]; then
    if [ -n "${REDIS_URL:-}" ]; then
        export CELERY_BROKER_URL="$REDIS_URL"
    elif "$PY" - <<'PYEOF'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PYEOF
    then
        export CELERY_BROKER_URL="redis://127.0.0.1:6379/0"
    else
        export CELERY_BROKER_URL="filesystem://"
    fi
fi
echo "Broker: ${CELERY_BROKER_URL%%@*}"

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py demo_setup

WORKER_LOG=var/log/worker.log
# -B: the worker also runs Celery beat, which deletes expired datasets and sessions and prunes the demo site's results
# rows (CELERY_BEAT_SCHEDULE).
"$PY" -m celery -A worker worker -B -Q portal,site.demo --concurrency 1 --loglevel INFO --hostname demo@%h >"$WORKER_LOG" 2>&1 &
WORKER_PID=$!
trap 'kill "$WORKER_PID" 2>/dev/null || true; wait "$WORKER_PID" 2>/dev/null || true' EXIT INT TERM
echo "Celery worker started (pid $WORKER_PID, log $WORKER_LOG)"
echo "Soyang is starting on http://127.0.0.1:8000 — press Ctrl+C to stop."
"$PY" manage.py runserver 127.0.0.1:8000 --noreload
