#!/usr/bin/env bash
# An Apache Kafka broker (single node, KRaft) for this checkout, on 127.0.0.1, assembled from
# Maven Central jars and run with java -cp; its jars and data live under .services/kafka.
#   scripts/kafka.sh start    fetch the jars if needed, format, start, print the bootstrap address
#   scripts/kafka.sh url      print the bootstrap address of the running broker
#   scripts/kafka.sh status   say whether it runs
#   scripts/kafka.sh stop     stop it (SIGTERM, then SIGKILL after 30 s)
# Idempotent: starting a running broker only prints its address.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/service.sh
source "$root/scripts/service.sh"
recipe="$root/scripts/kafka"
home="$root/.services/kafka"
libs="$home/libs"
data="$home/data"
default_port=${JOURNEY_KAFKA_PORT:-59092}

port() {
    if [ -f "$home/port" ]; then cat "$home/port"; else echo "$default_port"; fi
}

url() {
    echo "127.0.0.1:$(port)"
}

running() {
    [ -f "$home/pid" ] && kill -0 "$(cat "$home/pid")" 2>/dev/null \
        && grep -q kafka.Kafka "/proc/$(cat "$home/pid")/cmdline" 2>/dev/null
}

fetch() {
    # A stamp per pom: changing the Kafka version in the pom fetches again.
    local stamp
    stamp="$libs/.pom-$(sha256sum "$recipe/pom.xml" | cut -c1-16)"
    if [ -f "$stamp" ]; then return; fi
    echo "fetching the Kafka broker's jars from Maven Central..." >&2
    rm -rf "$libs"
    mvn -q -B -f "$recipe/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" -DincludeScope=runtime >&2
    touch "$stamp"
}

java_run() {
    java -Dlog4j2.configurationFile="$recipe/log4j2.yaml" -cp "$libs/*" "$@"
}

configure() {
    local chosen controller
    chosen=$(port)
    if port_in_use "$chosen"; then chosen=$(free_port); fi  # somebody else has our port
    controller=$(free_port)
    if [ -f "$home/controller_port" ] && ! port_in_use "$(cat "$home/controller_port")"; then
        controller=$(cat "$home/controller_port")
    fi
    echo "$chosen" >"$home/port"
    echo "$controller" >"$home/controller_port"
    sed -e "s#{port}#$chosen#g" -e "s#{controller_port}#$controller#g" -e "s#{data_dir}#$data#g" \
        "$recipe/server.properties.in" >"$home/server.properties"
}

format() {
    if [ -f "$data/meta.properties" ]; then return; fi
    local cluster_id
    # A Kafka cluster id: 16 random bytes in URL-safe base64 without padding, never starting with "-".
    cluster_id=$(python3 -c 'import base64, uuid; print("A" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[1:22])')
    java_run -Xmx256m kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id="$cluster_id" -c "$home/server.properties" >"$home/format.log" 2>&1 \
        || { cat "$home/format.log" >&2; exit 1; }
}

wait_ready() {
    local pid deadline
    pid=$(cat "$home/pid")
    deadline=$((SECONDS + ${JOURNEY_KAFKA_START_TIMEOUT:-180}))
    until grep -q "Kafka Server started" "$home/server.log" 2>/dev/null && port_in_use "$(port)"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the Kafka broker exited while starting; the end of $home/server.log:" >&2
            tail -n 20 "$home/server.log" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "the Kafka broker did not start in time; see $home/server.log" >&2
            exit 1
        fi
        sleep 0.5
    done
}

start() {
    if running; then url; return; fi
    command -v java >/dev/null || { echo "Java 17 or later is needed to run Kafka" >&2; exit 1; }
    mkdir -p "$home"
    fetch
    configure
    format
    : >"$home/server.log"
    setsid nohup java -Xms256m -Xmx512m -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$recipe/log4j2.yaml" -cp "$libs/*" \
        kafka.Kafka "$home/server.properties" >>"$home/server.log" 2>&1 </dev/null &
    echo $! >"$home/pid"
    wait_ready
    url
}

stop() {
    if ! running; then return; fi
    local pid
    pid=$(cat "$home/pid")
    kill -TERM "$pid"
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$home/pid"; return; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$home/pid"
}

serve "$@"
