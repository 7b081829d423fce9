#!/usr/bin/env bash
# The benchmark: scimd over HTTP/1.1 keep-alive (wrk) against PostgreSQL's
# own ceiling for the same work on the same table (pgbench), same machine,
# same run; then scimd on SQLite. Writes BENCHMARKS.md.
#
# Environment: N (users, default 100000; 1000000 works), EXTRA (users
# outside the big group, 10000), DURATION (per run, 10s), CONNS (32),
# RUNS (3, the median is reported), BACKENDS ("postgres sqlite"),
# TEST_DATABASE_URL (else postgres://postgres@127.0.0.1:5432/postgres);
# OPS and CEILINGS narrow what runs (for profiling one operation);
# METRIC_OPS ("patch get_id post") run again alternating a scimd with the
# metrics listener on and off, for what metrics cost;
# EVENT_OPS ("patch post group_add") run again alternating a scimd with
# change events on and one with them off (SCIMD_EVENTS=false), for what
# events cost, EVENT_RUNS pairs (16: pairs of identical builds spread
# 0.75–1.05, and the median of eight moved by ±0.04 between runs of the
# same code, more than the budget's margin); then the events are read
# back over the API (events/s);
# BENCH_EVENTS and BENCH_REQUEST_LOG (true, errors) set SCIMD_EVENTS and
# SCIMD_REQUEST_LOG for the main tables (to compare with a binary that had
# neither); BENCH_OUT (BENCHMARKS.md) is where the table goes; SCIMD_BIN
# runs that binary instead of building this checkout (old against new);
# BENCH_SQLITE_SYNCHRONOUS (full) is the SQLite URL's `synchronous`;
# BENCH_PERF (unset) profiles each operation once more under perf;
# BENCH_METRICS=true turns the metrics listener on for the main tables;
# BENCH_RUST_LOG (info, scimd's default) is scimd's RUST_LOG.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
N="${N:-100000}" EXTRA="${EXTRA:-10000}" DURATION="${DURATION:-10s}" CONNS="${CONNS:-32}" RUNS="${RUNS:-3}"
EVENT_RUNS="${EVENT_RUNS:-16}"
BACKENDS="${BACKENDS:-postgres sqlite}"
work="${BENCH_DIR:-$root/target/bench}"
mkdir -p "$work"
export LUA_DIR="$root/bench/lua" N

for tool in wrk sqlite3; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
done
if [ -n "${BENCH_PERF:-}" ] && ! command -v perf >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
pgbench="$(pg_config --bindir)/pgbench"
if [ -n "${SCIMD_BIN:-}" ]; then
  bin="$SCIMD_BIN" # another build, for old-against-new runs
else
  echo "== building scimd (release)"
  cargo build --release --locked --bin scimd
  bin="$root/target/release/scimd"
fi
admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export TOKEN="Pbench:$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
results="$work/results.jsonl"
secs="${DURATION%s}"
python3 - "$results" <<PY
import json, os, sys, datetime
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"op": "meta", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
           "cpu": cpu, "n": int("$N"), "extra": int("$EXTRA"), "conns": int("$CONNS"), "duration": "$DURATION", "runs": int("$RUNS"),
           "event_runs": int("$EVENT_RUNS")},
          open(sys.argv[1], "w"))
open(sys.argv[1], "a").write("\n")
PY

# A loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# BENCH_METRICS=true: the main tables' scimd serves metrics too (a
# listener of its own; every request is counted and timed).
main_metrics_port=""
[ "${BENCH_METRICS:-}" = true ] && main_metrics_port="$(free_port)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

start_scimd() { # url [events: true|false] [metrics port] [request log: off|errors|all]
  port="$(free_port)"
  local metrics=("SCIMD_REQUEST_LOG=${4:-${BENCH_REQUEST_LOG:-errors}}")
  local mport="${3-$main_metrics_port}"
  [ -n "$mport" ] && metrics+=("SCIMD_METRICS_BIND=127.0.0.1:$mport")
  DATABASE_URL="$1" SCIMD_BIND="127.0.0.1:$port" SCIMD_BOOTSTRAP_TOKEN="$TOKEN" SCIMD_DB_POOL_SIZE=16 RUST_LOG="${BENCH_RUST_LOG:-info}" \
    SCIMD_EVENTS="${2:-${BENCH_EVENTS:-true}}" SCIMD_WEBHOOK_ALLOW_PRIVATE=true env "${metrics[@]}" \
    "$bin" serve >"$work/scimd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "scimd did not start" >&2; cat "$work/scimd.log" >&2; exit 1
}
# scimd's peak resident memory so far (VmHWM), in KiB.
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
stop_scimd() { # backend
  local kib; kib="$(hwm_kib)"
  echo "{\"backend\": \"$1\", \"op\": \"rss\", \"kib\": $kib}" >>"$results"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
big_group() {
  curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/scim+json' \
    -d '{"displayName":"big"}' "http://127.0.0.1:$port/scim/v2/Groups" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
# Every measurement starts from the same state: the previous one's dead
# rows vacuumed and its WAL checkpointed (otherwise a run pays for the
# bloat and the checkpoint of the runs before it: GET by filter measured
# 2.5x slower on a table left bloated by the write benchmarks).
settle() { # backend
  case "$1" in
    postgres) psql "$url" -q -c CHECKPOINT -c "VACUUM ANALYZE users" -c "VACUUM ANALYZE groups" -c "VACUUM ANALYZE group_members" -c "VACUUM ANALYZE events" ;;
    sqlite) sqlite3 "$file" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null ;;
  esac
}
# CPU time (user + system, in clock ticks) the given processes have used.
cpu_ticks() { # pid...
  local p t=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# What PostgreSQL's processes have used: the live ones, and those that
# ended (a backend's time goes to the postmaster, which reaps it).
pg_ticks() {
  local pm; pm="$(pgrep -x -o postgres)"
  echo $(( $(cpu_ticks $(pgrep -x postgres)) + $(awk '{print $16 + $17}' "/proc/$pm/stat") ))
}
# One wrk run; besides throughput and latency it records the CPU scimd and
# PostgreSQL (all its processes) spent per request, in microseconds: what
# issue 17 is about, and steadier than throughput on a shared machine.
wrk_once() { # backend op run [label]
  local label="${4:-$2}" s0 p0
  settle "$1"
  s0="$(cpu_ticks "$pid")"; p0="$(pg_ticks)"
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$root/bench/lua/$2.lua" "http://127.0.0.1:$port" >"$work/wrk-$1-$label-$3.txt"
  local ds dp; ds=$(( $(cpu_ticks "$pid") - s0 )); dp=$(( $(pg_ticks) - p0 ))
  python3 "$root/bench/report.py" wrk "$work/wrk-$1-$label-$3.txt" |
    python3 -c "
import json, sys
d = json.load(sys.stdin)
n = max(d['rps'] * $secs, 1)
tick_us = 1e6 / $(getconf CLK_TCK)
d.update(backend='$1', op='$label', run=$3, scimd_cpu_us=round($ds * tick_us / n, 1), scimd_hwm_kib=$(hwm_kib))
if '$1' == 'postgres':
    d['pg_cpu_us'] = round($dp * tick_us / n, 1)
print(json.dumps(d))" >>"$results"
}
run_wrk() { # backend op
  for r in $(seq 1 "$RUNS"); do wrk_once "$1" "$2" "$r"; done
  echo "   $1 $2: $(tail -1 "$results")"
  [ -z "${BENCH_PERF:-}" ] || profile_op "$1" "$2"
}
# `perf record ARGS…` a second into an unmeasured wrk run of the operation,
# from the same starting state as the measured ones.
perf_under_load() { # backend op perf-record-args...
  local w
  settle "$1"
  wrk -t2 -c"$CONNS" -d"$DURATION" -s "$root/bench/lua/$2.lua" "http://127.0.0.1:$port" >/dev/null & w=$!
  sleep 1
  perf record "${@:3}" 2>/dev/null || true
  wait "$w" || true
}
# The first LINES lines of `perf report` on DATA, without its comments.
perf_lines() { # data lines report-args...
  perf report -i "$1" "${@:3}" --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -"$2" || true
}
# With BENCH_PERF set: two more runs of the operation, not measured: one
# under `perf record -a -g` (the whole machine: wrk, scimd and
# PostgreSQL), for the shares by thread and object and the top frames;
# one of scimd alone, for its call graph; both in
# $work/perf-BACKEND-OP.txt (issue 17: where each request's CPU goes).
profile_op() { # backend op
  local data="$work/perf-$1-$2.data"
  perf_under_load "$1" "$2" -a -g -F 999 -o "$data" -- sleep $((secs - 2))
  {
    echo "# $1 $2: share of all samples by thread name"
    perf_lines "$data" 15 --no-children --sort comm
    echo "# share by thread name and object (kernel, scimd's code, libc, PostgreSQL)"
    perf_lines "$data" 20 --no-children --sort comm,dso --percent-limit 0.5
    echo "# top frames (self), by thread name and object"
    perf_lines "$data" 60 --no-children --sort comm,dso,sym --percent-limit 0.4
  } >"$work/perf-$1-$2.txt"
  # Where scimd's own time goes, by function and everything it calls:
  # scimd alone, with DWARF call chains (a release build keeps no frame
  # pointers), at a lower rate to keep the data small.
  perf_under_load "$1" "$2" -p "$pid" --call-graph dwarf,16384 -F 199 -o "$data" -- sleep 4
  {
    echo "# $1 $2: scimd's samples by function, with what it calls (children), above 3 %"
    perf_lines "$data" 80 --children --sort sym --percent-limit 3
  } >>"$work/perf-$1-$2.txt"
  rm -f "$data"
  echo "   $1 $2 profile: $work/perf-$1-$2.txt"
}
# What change events cost: each of EVENT_OPS run by a scimd with events on
# (label OP+events) and one with them off (OP-events), alternated,
# EVENT_RUNS times; then the recorded events read back over the API. Arguments:
# backend, database URL.
event_costs() {
  [ -n "$event_ops" ] || return 0
  stop_scimd "$1"
  # A webhook subscription to a local receiver collects every event the
  # runs with events make (the receiver refuses meanwhile, so delivery
  # backs off and stays out of the measurement); then how fast they drain.
  local rport rlog hook receiver
  rport="$(free_port)"
  rlog="$work/webhook-$1.log"; : >"$rlog"; touch "$rlog.refuse"
  python3 "$root/bench/webhook_receiver.py" "$rport" "$rlog" & receiver=$!
  start_scimd "$2"
  hook="$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"url\": \"http://127.0.0.1:$rport/hook\"}" "http://127.0.0.1:$port/api/v1/webhooks" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  for op in $event_ops; do
    for r in $(seq 1 "$EVENT_RUNS"); do
      for events in true false; do
        start_scimd "$2" "$events"
        wrk_once "$1" "$op" "$r" "$op$([ "$events" = true ] && echo + || echo -)events"
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
      done
    done
    echo "   $1 $op with/without events: $(tail -2 "$results" | tr '\n' ' ')"
  done
  start_scimd "$2"
  rm -f "$rlog.refuse"; : >"$rlog"
  curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/v1/webhooks/$hook/enable"
  python3 "$root/bench/webhook_drain.py" "http://127.0.0.1:$port" "$TOKEN" "$hook" "$rlog" 20 |
    python3 -c "import json,sys; d=json.load(sys.stdin); d.update(backend='$1', op='webhook_drain'); print(json.dumps(d))" >>"$results"
  echo "   $1 webhook delivery: $(tail -1 "$results")"
  curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/v1/webhooks/$hook"
  kill "$receiver" 2>/dev/null || true
  settle "$1"
  python3 "$root/bench/events_read.py" "http://127.0.0.1:$port" "$TOKEN" 200000 20 |
    python3 -c "import json,sys; d=json.load(sys.stdin); d.update(backend='$1', op='events_read'); print(json.dumps(d))" >>"$results"
  echo "   $1 events read: $(tail -1 "$results")"
}
# What metrics and the provisioning log cost: each of METRIC_OPS run by a
# scimd with the metrics listener on (scraped every second meanwhile) and
# the request log at its default (errors), label OP+metrics, and one with
# both off (OP-metrics), alternated, RUNS times. Arguments: backend,
# database URL.
metric_costs() {
  [ -n "$metric_ops" ] || return 0
  stop_scimd "$1"
  local mport scraper
  mport="$(free_port)"
  for op in $metric_ops; do
    for r in $(seq 1 "$RUNS"); do
      for metrics in on off; do
        if [ "$metrics" = on ]; then start_scimd "$2" true "$mport" errors; else start_scimd "$2" true "" off; fi
        scraper=""
        if [ "$metrics" = on ]; then
          ( for _ in $(seq 1 120); do curl -fsS -o /dev/null "http://127.0.0.1:$mport/metrics" || true; sleep 1; done ) &
          scraper=$!
        fi
        wrk_once "$1" "$op" "$r" "$op$([ "$metrics" = on ] && echo + || echo -)metrics"
        [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
      done
    done
    echo "   $1 $op with/without metrics: $(tail -2 "$results" | tr '\n' ' ')"
  done
  start_scimd "$2"
}
metric_ops="${METRIC_OPS-patch get_id post}"
event_ops="${EVENT_OPS-patch post group_add}"
ops="${OPS:-patch put get_filter get_id post group_add entra_sync page_first page_last page_index}"
# The cursor (RFC 9865) of the tenant's last page of 100 users: pages run in
# id order, so it names the 101st-largest id. Cursors are signed with the
# deployment's secret (src/http/cursor.rs: 'n', the id's bytes, the first 16
# bytes of HMAC-SHA-256 over both; base64url). Arguments: that id, the
# secret in hex.
last_cursor() {
  python3 -c 'import base64,hashlib,hmac,sys,uuid
body = b"n" + uuid.UUID(sys.argv[1]).bytes
tag = hmac.new(bytes.fromhex(sys.argv[2]), body, hashlib.sha256).digest()[:16]
print(base64.urlsafe_b64encode(body + tag).decode().rstrip("="))' "$1" "$2"
}
ceilings="${CEILINGS-a_rmw b_update_returning c_point_select d_insert e_hot_group f_update_with_event g_scimd_get_filter}"

if [[ " $BACKENDS " == *" postgres "* ]]; then
  db="scimd_bench_$$"
  psql "$admin_url" -qAtc "CREATE DATABASE $db" >/dev/null
  url="${admin_url%/*}/$db"
  echo "== PostgreSQL: seeding $N users"
  start_scimd "$url"
  tenant="$(psql "$url" -qAtc "SELECT t.id FROM tenants t JOIN access_keys k ON k.tenant_id = t.id LIMIT 1")"
  export GROUP; GROUP="$(big_group)"
  psql "$url" -q -v ON_ERROR_STOP=1 -v t="$tenant" -v n="$N" -v extra="$EXTRA" -v gid="$GROUP" -f "$root/bench/seed.sql" >/dev/null
  export IDS="$work/ids-postgres.txt"
  export LAST_CURSOR; LAST_CURSOR="$(last_cursor "$(psql "$url" -qAtc "SELECT id FROM users WHERE tenant_id = '$tenant' ORDER BY id DESC LIMIT 1 OFFSET 100")" \
    "$(psql "$url" -qAtc "SELECT encode(secret, 'hex') FROM deployment_secrets WHERE name = 'cursor-hmac'")")"
  psql "$url" -qAtc "SELECT id || ' ' || user_name FROM users WHERE tenant_id = '$tenant' AND user_name ~ '^u[0-9]+$' ORDER BY substr(user_name, 2)::int" >"$IDS"
  echo "== PostgreSQL ceilings (pgbench)"
  for c in $ceilings; do
    for r in $(seq 1 "$RUNS"); do
      settle postgres
      p0="$(pg_ticks)"
      rm -f "$work/pglog-$c-$r".*
      "$pgbench" -n -M prepared -c "$CONNS" -j 2 -T "$secs" -l --sampling-rate=0.2 --log-prefix="$work/pglog-$c-$r" -f "$root/bench/pgbench/$c.sql" -D t="$tenant" -D n="$N" -D extra="$EXTRA" -D g="$GROUP" "$url" \
        >"$work/pgbench-$c-$r.txt" 2>&1
      dp=$(( $(pg_ticks) - p0 ))
      python3 "$root/bench/report.py" pgbench "$work/pgbench-$c-$r.txt" "$work/pglog-$c-$r" |
        python3 -c "
import json, sys
d = json.load(sys.stdin)
n = max(d['tps'] * $secs, 1)
d.update(backend='postgres', op='ceiling_${c:0:1}', run=$r, pg_cpu_us=round($dp * 1e6 / $(getconf CLK_TCK) / n, 1))
print(json.dumps(d))" >>"$results"
      rm -f "$work/pglog-$c-$r".*
    done
    echo "   ceiling $c: $(tail -1 "$results")"
  done
  # (f) wrote events of its own into the tenant's feed: not scimd's.
  psql "$url" -qAtc "TRUNCATE events" >/dev/null
  echo "== scimd on PostgreSQL (wrk)"
  for op in $ops; do run_wrk postgres "$op"; done
  metric_costs postgres "$url"
  event_costs postgres "$url"
  stop_scimd postgres
  psql "$admin_url" -qAtc "DROP DATABASE $db WITH (FORCE)" >/dev/null
fi

if [[ " $BACKENDS " == *" sqlite "* ]]; then
  file="$work/bench.db"
  rm -f "$file"*
  echo "== SQLite: seeding $N users"
  start_scimd "sqlite://$file?synchronous=${BENCH_SQLITE_SYNCHRONOUS:-full}"
  tenant="$(sqlite3 "$file" "SELECT tenant_id FROM access_keys LIMIT 1")"
  export GROUP; GROUP="$(big_group)"
  python3 "$root/bench/seed_sqlite.py" "$file" "$tenant" "$N" "$EXTRA" "$GROUP"
  export IDS="$file.ids"
  export LAST_CURSOR; LAST_CURSOR="$(last_cursor "$(sqlite3 "$file" "SELECT id FROM users WHERE tenant_id = '$tenant' ORDER BY id DESC LIMIT 1 OFFSET 100")" \
    "$(sqlite3 "$file" "SELECT hex(secret) FROM deployment_secrets WHERE name = 'cursor-hmac'")")"
  echo "== scimd on SQLite (wrk)"
  for op in $ops; do run_wrk sqlite "$op"; done
  metric_costs sqlite "sqlite://$file?synchronous=${BENCH_SQLITE_SYNCHRONOUS:-full}"
  event_costs sqlite "sqlite://$file?synchronous=${BENCH_SQLITE_SYNCHRONOUS:-full}"
  stop_scimd sqlite
fi

out="${BENCH_OUT:-$root/BENCHMARKS.md}"
BENCH_NOTES="${BENCH_NOTES:-$root/bench/notes.md}" python3 "$root/bench/report.py" render "$results" >"$out"
echo "== wrote $out"
cat "$out"
