"""A Spark Connect server on this machine, for tests, the demo and benchmarks (never for a hospital's cluster).

It is the real Spark that pyspark ships (the JVM of the Debian JDK, ``local[N]`` master), serving Spark Connect
on a port of 127.0.0.1, with a persistent catalog (an embedded Derby Hive metastore) and its Parquet tables under
one directory: a warehouse written once is found again by the next server started on the same directory.

    python -m warehouse.spark_server start var/spark --port 15002   # prints the sc:// URL, waits until it answers
    python -m warehouse.spark_server stop var/spark
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002

#: Warnings and errors only in server.log (Spark's default logs every statement of every session).
LOG_CONFIG = """rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.connect.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.connect.level = info
"""

#: Settings of a server for test data (``start_server(small_data=True)``).
SMALL_DATA_SETTINGS = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
}


@dataclass
class LocalSparkServer:
    """A running local server: its URL, process and directory."""

    url: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """Stop the server (and wait for it); the warehouse directory stays."""
        stop_server(self.directory)


def spark_home() -> Path:
    """The Spark distribution inside the pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def java_available() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    directory: Path,
    *,
    port: int = DEFAULT_PORT,
    cores: int = 2,
    memory: str = "2g",
    timeout_seconds: float = 120.0,
    persistent: bool = True,
    small_data: bool = False,
) -> LocalSparkServer:
    """Start a Spark Connect server on 127.0.0.1:``port`` with its catalog and tables in ``directory``.

    Returns once the server accepts connections. A server already running for ``directory`` is reused.
    ``persistent``: keep the catalog in an embedded Hive metastore (tables found again after a restart); without
    it the catalog lives in the server's memory (tests, which load their data at the start: each table lookup then
    costs no metastore round trip). ``small_data``: tune for test data of a few thousand persons, where compiling
    and scheduling, not reading, is what a statement costs: no code generation, no adaptive re-planning, one
    shuffle partition (a generation of GiBleed: 3 s against 6.4 s). Never for benchmarks.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = directory / "server.pid"
    port_file = directory / "server.port"
    if pid_file.exists() and port_file.exists():
        old_port = int(port_file.read_text())
        if _alive(int(pid_file.read_text())) and _port_answers(old_port):
            return LocalSparkServer(f"sc://127.0.0.1:{old_port}", old_port, directory, None)
    if _port_answers(port):
        raise RuntimeError(f"port {port} is taken by another program; choose another with --port")
    if not java_available():
        raise RuntimeError("Spark needs Java 17 or later (Debian: apt-get install openjdk-17-jre-headless)")
    home = spark_home()
    metastore = directory / "metastore_db"
    catalog = "hive" if persistent else "in-memory"
    log_config = directory / "log4j2.properties"
    log_config.write_text(LOG_CONFIG)
    command = [
        str(home / "bin" / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--master",
        f"local[{int(cores)}]",
        "--driver-memory",
        memory,
        "--name",
        "Soyang local Spark",
        "--conf",
        f"spark.connect.grpc.binding.port={int(port)}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        f"spark.sql.warehouse.dir={directory / 'warehouse'}",
        "--conf",
        f"spark.sql.catalogImplementation={catalog}",
        "--conf",
        f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={metastore};create=true",
        "--conf",
        f"spark.driver.extraJavaOptions=-Dderby.system.home={directory} -Dlog4j.configurationFile={log_config}",
        "--conf",
        "spark.ui.enabled=false",
        # One process plays driver and executor: a machine stalled for minutes (a loaded test host) must not make
        # it declare its own executor lost.
        "--conf",
        "spark.network.timeout=3600s",
        "--conf",
        "spark.executor.heartbeatInterval=60s",
        "--conf",
        f"spark.local.dir={directory / 'tmp'}",
    ]
    tuning = SMALL_DATA_SETTINGS if small_data else {"spark.sql.shuffle.partitions": str(max(2, 2 * int(cores)))}
    for key, value in tuning.items():
        command += ["--conf", f"{key}={value}"]
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOG_DIR=str(directory / "log"))
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    if not persistent:
        # The catalog of an in-memory server dies with it, its tables' files would not: a table of the same name
        # could not be created again over them.
        shutil.rmtree(directory / "warehouse", ignore_errors=True)
    log = (directory / "server.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - a fixed command of this package's own files
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory, start_new_session=True
    )
    pid_file.write_text(str(process.pid))
    port_file.write_text(str(port))
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark server stopped at start (exit {process.returncode}): see {log.name}")
        if _port_answers(port):
            return LocalSparkServer(f"sc://127.0.0.1:{port}", port, directory, process)
        time.sleep(0.25)
    stop_server(directory)
    raise RuntimeError(f"the Spark server did not answer within {timeout_seconds:.0f} s: see {log.name}")


def stop_server(directory: Path) -> bool:
    """Stop the server of ``directory``; True when one was running."""
    pid_file = Path(directory).resolve() / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    running = _alive(pid)
    if running:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(120):
            if not _alive(pid):
                break
            time.sleep(0.25)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    pid_file.unlink(missing_ok=True)
    return running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that exited but was not reaped is a zombie: not alive for our purpose.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Spark Connect server for Soyang's tests and demos.")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", type=Path, help="catalog and tables of the server (e.g. var/spark)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="2g", help="JVM heap of the server (e.g. 2g, 8g)")
    parser.add_argument("--in-memory", action="store_true", help="keep the catalog in memory (lost at stop)")
    parser.add_argument("--small-data", action="store_true", help="tune for test data (never for benchmarks)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        print("stopped" if stop_server(args.directory) else "no server was running")
        return 0
    try:
        server = start_server(
            args.directory,
            port=args.port,
            cores=args.cores,
            memory=args.memory,
            persistent=not args.in_memory,
            small_data=args.small_data,
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(server.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
