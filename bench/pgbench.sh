#!/usr/bin/env bash
# PostgreSQL's own cost of durable writes, without rollbot (docs/performance.md):
#   bash bench/pgbench.sh [seconds]
# One transaction per request (three inserts) at 32 clients, then 32 requests per transaction
# at 2 clients (what rollbot's filer writes). Uses a scratch database it drops afterwards.
set -euo pipefail
cd "$(dirname "$0")/pgbench"
seconds="${1:-10}"
url="${ROLLBOT_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
db="rollbot_pgbench_$$"
psql "$url/postgres" -qc "CREATE DATABASE $db"
trap 'psql "$url/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql "$url/$db" -qf schema.sql 2>/dev/null
echo "== one request per transaction, 32 clients"
pgbench -n -M prepared -c 32 -j 2 -T "$seconds" -f one_request.sql "$url/$db" | grep -E "^(tps|latency)"
echo "== 32 requests per transaction, 2 clients (multiply tps by 32 for requests/s)"
pgbench -n -M prepared -c 2 -j 2 -T "$seconds" -f grouped.sql "$url/$db" | grep -E "^(tps|latency)"
