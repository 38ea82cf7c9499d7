#!/usr/bin/env bash
# The Spark tests start the real Spark that pyspark ships (warehouse.spark_server), which runs on Java 17 or later;
# the JDK is never downloaded at test time. Install the distribution's headless runtime when Java is missing or
# older and we are allowed to. A server already running (SOYANG_TEST_SPARK_URL) needs no Java here.
set -euo pipefail
if [ -n "${SOYANG_TEST_SPARK_URL:-}" ]; then
    exit 0
fi
java_major() {
    local java=java
    if [ -n "${JAVA_HOME:-}" ]; then java="$JAVA_HOME/bin/java"; fi
    command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
    # 'openjdk version "17.0.15" 2025-04-15' -> 17 (and "1.8.0_x" -> 1, which is too old as it should be)
    "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}
if [ "$(java_major)" -ge 17 ] 2>/dev/null; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing openjdk-17-jre-headless from the system packages (the Spark tests need Java 17+)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
else
    echo "The Spark tests need Java 17 or later: install the 'openjdk-17-jre-headless' package (root required)," \
        "or set SOYANG_TEST_SPARK_URL to a Spark Connect server already running." >&2
    exit 1
fi
