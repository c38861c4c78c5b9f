#!/usr/bin/env bash
# A PostgreSQL server for this checkout, on 127.0.0.1, with its data under .services/postgres.
#   scripts/postgres.sh start    install (Debian's package) if needed, start, print the URL
#   scripts/postgres.sh url      print the URL of the running server
#   scripts/postgres.sh status   say whether it runs
#   scripts/postgres.sh stop     stop it
# Idempotent: starting a running server only prints its URL.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/service.sh
source "$root/scripts/service.sh"
home="$root/.services/postgres"
data="$home/data"
default_port=${JOURNEY_POSTGRES_PORT:-54329}
user=journey
password=journey
database=journey

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
    # initdb and the server refuse to run as root: run them as the postgres user then.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
    if [ -z "$(find_bin)" ]; then
        echo "installing PostgreSQL from Debian's packages..." >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
}

port() {
    if [ -f "$home/port" ]; then cat "$home/port"; else echo "$default_port"; fi
}

running() {
    local bin
    bin=$(find_bin)
    [ -n "$bin" ] && [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

url() {
    echo "postgresql://$user:$password@127.0.0.1:$(port)/$database"
}

start() {
    if running; then url; return; fi
    install
    local bin
    bin=$(find_bin)
    mkdir -p "$home"
    if [ "$(id -u)" = 0 ]; then
        chmod o+x "$root" "$root/.services"
        chown postgres: "$home"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$home/initdb.log"
    fi
    local chosen
    chosen=$(port)
    if port_in_use "$chosen"; then
        chosen=$(free_port)  # somebody else's server has our port
    fi
    echo "$chosen" >"$home/port"
    as_owner "$bin/pg_ctl" -D "$data" -l "$home/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $chosen -k $home -c max_connections=200" start >&2
    as_owner "$bin/psql" -h 127.0.0.1 -p "$chosen" -U postgres -d postgres -qtA >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE $user LOGIN SUPERUSER PASSWORD '$password';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $database OWNER $user'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database')\gexec
SQL
    url
}

stop() {
    if running; then as_owner "$(find_bin)/pg_ctl" -D "$data" -m fast -w stop >&2; fi
}

serve "$@"
