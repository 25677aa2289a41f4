#!/usr/bin/env bash
# Latency of the reference operation under a bounded loopback load, next to
# the upstream's own latency measured the same way.
#
# Starts the standalone sandbox upstream (bin/sandbox, built from
# upstream/sandbox/cmd/sandbox) on a free loopback port with -latency
# UPSTREAM_LATENCY_MS, and runs wrk at 32 connections for a fixed time, each
# time after a warm-up, twice against that same sandbox process:
#
#   1. the upstream's own: e2e/load/upstream.lua replays the upstream call
#      behind the reference operation (DescribeCommunityImages, Offset=0,
#      Limit=20, signed; what `sandbox -print-request` prints) straight to
#      the sandbox, at the URL the client posts to;
#   2. the facade: bin/imagegraph, pointed at the sandbox with
#      COMPSHARE_BASE_URL and a key pair drawn at random for the run (given
#      to the sandbox as SANDBOX_PUBLIC_KEY/SANDBOX_PRIVATE_KEY, so the
#      facade signs for real), under e2e/load/reference.lua at /query.
#
# The budget is the facade's median within 2 ms of the upstream's own; the
# report gives both medians and the difference. Then the same again against a
# sandbox without latency: the facade's own cost at that concurrency (set
# OVERHEAD_RUN=0 to skip it).
#
# The upstream limits are lifted (COMPSHARE_MAX_INFLIGHT=64, COMPSHARE_QPS and
# COMPSHARE_BURST=100000): with the defaults (8 in flight, 20/s) the run would
# measure the limiter's queue, not the facade.
#
# Each run reports the median, p90 and p99 latency and requests/s (from the
# same histogram as wrk's --latency table) and the CPU the sandbox, the
# server, wrk and other processes used. The server's CPU per request is the
# facade's alone: the sandbox is another process, reported apart. The facade
# run also reports its upstream calls (the sandbox's GET /stats).
#
# It is a measurement, not a check: it exits non-zero only when the run is
# broken (wrk missing, the sandbox or the server does not start or dies, wrk
# fails, a socket error, a non-200 answer, an "errors" entry in a facade body,
# an upstream body without "RetCode":0, a facade run without upstream calls),
# never on a latency.
#
# Needs wrk (Debian: apt-get install -y wrk). Run from anywhere:
#
#   bash e2e/load/run.sh
#
# Settings (environment): IMAGEGRAPH_BIN (default: go build -o bin/imagegraph),
# SANDBOX_BIN (default: go build -o bin/sandbox ./upstream/sandbox/cmd/sandbox),
# CONNECTIONS (32), THREADS (2), DURATION (15s), WARMUP (3s), REFERENCE_RUN,
# PAGES_RUN and FLOOD_RUN (1: each part runs; the pages are measure_pages'
# three workloads: repeated pages, distinct pages every request executed, and
# the same at RSS_CONNECTIONS), PAGES_WARMUP (8s), RSS_CONNECTIONS (128),
# PIN (1), FLOOD_CONNECTIONS (800),
# UPSTREAM_LATENCY_MS (20), OVERHEAD_RUN (1), COMPSHARE_MAX_INFLIGHT (64),
# COMPSHARE_QPS (100000), COMPSHARE_BURST (100000), LOAD_OUT (e2e/load/artifacts).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
UPSTREAM_LATENCY_MS=${UPSTREAM_LATENCY_MS:-20}
OVERHEAD_RUN=${OVERHEAD_RUN:-1}
REFERENCE_RUN=${REFERENCE_RUN:-1}
PAGES_RUN=${PAGES_RUN:-1}
FLOOD_RUN=${FLOOD_RUN:-1}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-800}
PAGES_WARMUP=${PAGES_WARMUP:-8s}
RSS_CONNECTIONS=${RSS_CONNECTIONS:-128}
PIN=${PIN:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
MAX_INFLIGHT=${COMPSHARE_MAX_INFLIGHT:-64}
QPS=${COMPSHARE_QPS:-100000}
BURST=${COMPSHARE_BURST:-100000}
OUT=${LOAD_OUT:-$root/e2e/load/artifacts}
FACADE_SCRIPT=$here/reference.lua
PAGES_SCRIPT=$here/pages.lua
FLOOD_SCRIPT=$here/flood.lua
UPSTREAM_SCRIPT=$here/upstream.lua
# The path the client posts to under its base URL.
UPSTREAM_PATH='/?Action=DescribeCommunityImages'

die() { echo "load: $*" >&2; exit 1; }

command -v wrk >/dev/null 2>&1 || die "wrk not found; install it with: apt-get install -y wrk"
mkdir -p "$OUT"

# binary VAR DEFAULT PACKAGE: the executable $VAR names, or DEFAULT freshly
# built from PACKAGE.
binary() {
  local var=$1 path=$2 pkg=$3
  if [[ -n ${!var:-} ]]; then
    [[ -x ${!var} ]] || die "$var=${!var} is not an executable"
    printf '%s' "${!var}"
    return
  fi
  echo "load: building $path" >&2
  "${GO:-go}" build -o "$path" "$pkg" >&2 || die "go build $pkg failed"
  printf '%s' "$path"
}
bin=$(binary IMAGEGRAPH_BIN "$root/bin/imagegraph" .)
sandbox_bin=$(binary SANDBOX_BIN "$root/bin/sandbox" ./upstream/sandbox/cmd/sandbox)

# A key pair for this run only, given to the sandbox and to the facade; never
# printed.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
sb_public_key=load-$(rand_hex 8)
sb_private_key=$(rand_hex 20)

# The signed upstream request upstream.lua replays.
export UPSTREAM_REQUEST_FILE=$OUT/upstream-request.form
SANDBOX_PUBLIC_KEY=$sb_public_key SANDBOX_PRIVATE_KEY=$sb_private_key \
  "$sandbox_bin" -print-request >"$UPSTREAM_REQUEST_FILE" || die "$sandbox_bin -print-request failed"

server_pid=""
server_log=""
port=""
sandbox_pid=""
sandbox_log=""
sandbox_port=""

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL.
stop_pid() {
  [[ -n $1 ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_server() { stop_pid "$server_pid"; server_pid=""; }
stop_sandbox() { stop_pid "$sandbox_pid"; sandbox_pid=""; }
trap 'stop_server; stop_sandbox' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_free PORT: nothing answers on 127.0.0.1:PORT.
port_free() {
  ! { (exec 3<>"/dev/tcp/127.0.0.1/$1"); } 2>/dev/null
}

# http PORT METHOD PATH: the body of a 2xx answer from 127.0.0.1:PORT, or
# failure (bash's /dev/tcp, so that nothing beyond wrk is needed).
http() {
  local line body ok=1
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' "$2" "$3" >&3
  IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
  [[ $line =~ ^HTTP/1\.[01]\ 2[0-9][0-9] ]] && ok=0
  body=$(timeout 2 cat <&3 | sed '1,/^\r\{0,1\}$/d' || true)
  exec 3<&-
  [[ $ok == 0 ]] && printf '%s' "$body"
  return $ok
}

# upstream_calls: the sandbox's call count, from its GET /stats.
upstream_calls() {
  local st
  st=$(http "$sandbox_port" GET /stats) || die "the sandbox did not answer GET /stats"
  [[ $st =~ \"calls\":([0-9]+) ]] || die "the sandbox's GET /stats holds no call count: $st"
  printf '%s' "${BASH_REMATCH[1]}"
}

# start_sandbox LATENCY_MS: the standalone sandbox, ready, on $sandbox_port.
# It listens on a port the kernel picks and names it in its first line.
start_sandbox() {
  local latency_ms=$1 addr=""
  sandbox_log=$OUT/sandbox-${latency_ms}ms.log
  SANDBOX_PUBLIC_KEY=$sb_public_key SANDBOX_PRIVATE_KEY=$sb_private_key \
    ${CLIENT_WRAP:-} "$sandbox_bin" -addr 127.0.0.1:0 -latency "${latency_ms}ms" >"$sandbox_log" 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 1 150); do
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
      wait "$sandbox_pid" 2>/dev/null || true
      sandbox_pid=""
      cat "$sandbox_log" >&2
      die "the sandbox exited before answering GET /stats"
    fi
    if [[ -z $addr ]]; then
      addr=$(grep -o -m1 'listening on http://127\.0\.0\.1:[0-9]*' "$sandbox_log" || true)
      sandbox_port=${addr##*:}
    fi
    if [[ -n $addr ]] && http "$sandbox_port" GET /stats >/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  cat "$sandbox_log" >&2
  die "the sandbox did not answer GET /stats within 15 s"
}

# start_server LATENCY_MS [VAR=VALUE...]: the server against the sandbox on
# $sandbox_port, ready, on $port; the assignments override the run's
# settings (the lifted upstream limits among them).
start_server() {
  local latency_ms=$1 health
  shift
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    server_log=$OUT/server-${latency_ms}ms.log
    # The sandbox's base URL and keys, whatever the caller's environment
    # holds, so that no traffic leaves the machine; no region or project id,
    # so that the facade's upstream request is the one upstream.lua replays.
    env -u COMPSHARE_REGION -u COMPSHARE_PROJECT_ID -u SANDBOX_LATENCY \
      PORT="$port" \
      COMPSHARE_BASE_URL="http://127.0.0.1:$sandbox_port" \
      COMPSHARE_PUBLIC_KEY="$sb_public_key" \
      COMPSHARE_PRIVATE_KEY="$sb_private_key" \
      COMPSHARE_MAX_INFLIGHT="$MAX_INFLIGHT" \
      COMPSHARE_QPS="$QPS" \
      COMPSHARE_BURST="$BURST" \
      LOG_LEVEL=warn \
      METRICS_ADDR=127.0.0.1:0 \
      "$@" \
      ${SERVER_WRAP:-} "$bin" >"$server_log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 150); do
      if ! kill -0 "$server_pid" 2>/dev/null; then
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        if grep -q "address already in use" "$server_log"; then
          continue 2
        fi
        cat "$server_log" >&2
        die "the server exited before answering /healthz"
      fi
      if health=$(http "$port" GET /healthz); then
        [[ $health == *'"mode":"upstream"'* ]] || die "the server is not in upstream mode: $health"
        return 0
      fi
      sleep 0.1
    done
    cat "$server_log" >&2
    die "the server did not answer /healthz on port $port within 15 s"
  done
  die "found no free loopback port"
}

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# host_ticks: "busy total" clock ticks of the whole machine.
host_ticks() { awk '/^cpu /{idle = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; print t - idle, t; exit}' /proc/stat; }
# cores A B: the cores ticks A to B took over the run's wall time.
cores() { awk -v a="$1" -v b="$2" -v t="$(getconf CLK_TCK)" -v w="${R[wall]}" 'BEGIN{printf "%.2f", (b - a) / t / w}'; }

declare -A R
# run_wrk NAME DURATION SCRIPT URL [allow-no-calls]: one wrk run; its
# result in R. The sandbox runs throughout, the server ($server_pid) when
# set. A run without upstream calls is broken, unless allow-no-calls (a run
# the cache answers).
run_wrk() {
  local name=$1 duration=$2 script=$3 url=$4 allow=${5:-} out=$OUT/wrk-$1.txt tf=$OUT/wrk-$1.time rc=0 kv line
  local b0 b1 s0="" s1="" h0 h1 t0 t1 c0 c1
  c0=$(upstream_calls)
  b0=$(cpu_ticks "$sandbox_pid")
  [[ -n $server_pid ]] && s0=$(cpu_ticks "$server_pid")
  h0=$(host_ticks); t0=$(date +%s.%N)
  { TIMEFORMAT='%U %S'; time ${CLIENT_WRAP:-} wrk -t"${WRK_THREADS:-$THREADS}" -c"$CONNECTIONS" -d"$duration" --timeout "$WRK_TIMEOUT" --latency \
      -s "$script" "$url" >"$out" 2>&1; } 2>"$tf" || rc=$?
  t1=$(date +%s.%N); h1=$(host_ticks)
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$out" "$sandbox_log" >&2; die "$name: the sandbox died during the run"; }
  if [[ -n $server_pid ]]; then
    kill -0 "$server_pid" 2>/dev/null || { cat "$out" "$server_log" >&2; die "$name: the server died during the run"; }
    s1=$(cpu_ticks "$server_pid")
  fi
  b1=$(cpu_ticks "$sandbox_pid")
  c1=$(upstream_calls)
  [[ $rc == 0 ]] || { cat "$out" >&2; die "$name: wrk exited with $rc"; }
  line=$(grep '^LOAD_RESULT ' "$out" || true)
  [[ -n $line ]] || { cat "$out" >&2; die "$name: wrk printed no LOAD_RESULT line"; }
  R=()
  for kv in ${line#LOAD_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
  if (( R[responses] == 0 || R[non200] > 0 || R[errors] > 0 || R[socket_errors] > 0 )); then
    cat "$out" >&2
    die "$name: broken run: responses=${R[responses]} non200=${R[non200]} errors=${R[errors]} socket_errors=${R[socket_errors]}"
  fi
  (( c1 > c0 )) || [[ $allow == allow-no-calls ]] || die "$name: the sandbox counted no upstream call"
  read -r "R[wrk_user]" "R[wrk_sys]" <"$tf"
  R[wall]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
  R[sandbox_cores]=$(cores "$b0" "$b1")
  R[server_cores]=0
  [[ -n $s0 ]] && R[server_cores]=$(cores "$s0" "$s1")
  R[wrk_cores]=$(awk -v u="${R[wrk_user]}" -v s="${R[wrk_sys]}" -v w="${R[wall]}" 'BEGIN{printf "%.2f", (u + s) / w}')
  R[host_cores]=$(awk -v a="$h0" -v b="$h1" -v n="$(nproc)" 'BEGIN{split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / (y[2] - x[2]) * n}')
  R[other_cores]=$(awk -v h="${R[host_cores]}" -v b="${R[sandbox_cores]}" -v s="${R[server_cores]}" -v w="${R[wrk_cores]}" 'BEGIN{o = h - b - s - w; if (o < 0) o = 0; printf "%.2f", o}')
  R[rps]=$(awk -v n="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN{printf "%.0f", n / (d / 1e6)}')
  # CPU a request of the process under test: the server when it runs, the
  # sandbox otherwise.
  R[cpu_ms]=$(awk -v c="${R[server_cores]}" -v b="${R[sandbox_cores]}" -v f="${server_pid:+1}" -v r="${R[rps]}" \
    'BEGIN{if (f != 1) c = b; printf "%.2f", (r > 0 ? c / r * 1000 : 0)}')
  R[calls]=$((c1 - c0))
}

ms() { awk -v us="$1" 'BEGIN{printf "%.1fms", us / 1000}'; }
# latency_table NAME: wrk's --latency table of run NAME.
latency_table() { sed -n '/Latency Distribution/,/^[^ ]/p' "$OUT/wrk-$1.txt" | sed '$d'; }
machine() { echo "machine ${R[host_cores]} of $(nproc) cores busy; ${R[requests]} requests, none bad"; }

summary=$OUT/summary.txt
: >"$summary"
report() { echo "$*" | tee -a "$summary"; }

# measure LATENCY_MS: one sandbox with that latency; warm-up and measured
# run against it directly, then warm-up and measured run of a fresh server
# against it.
measure() {
  local latency_ms=$1 own diff verdict
  start_sandbox "$latency_ms"
  echo "load: sandbox pid $sandbox_pid on 127.0.0.1:$sandbox_port, -latency ${latency_ms}ms"

  echo "load: the upstream's own: warm-up ($WARMUP)"
  run_wrk "warmup-upstream-${latency_ms}ms" "$WARMUP" "$UPSTREAM_SCRIPT" "http://127.0.0.1:$sandbox_port$UPSTREAM_PATH"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s e2e/load/upstream.lua http://127.0.0.1:$sandbox_port$UPSTREAM_PATH"
  run_wrk "upstream-${latency_ms}ms" "$DURATION" "$UPSTREAM_SCRIPT" "http://127.0.0.1:$sandbox_port$UPSTREAM_PATH"
  latency_table "upstream-${latency_ms}ms"
  own=${R[p50_us]}
  report "upstream's own @$CONNECTIONS clients (${latency_ms}ms latency): median $(ms "${R[p50_us]}"), p90 $(ms "${R[p90_us]}"), p99 $(ms "${R[p99_us]}"), ${R[rps]} req/s"
  report "  CPU over the run: sandbox ${R[sandbox_cores]} cores (${R[cpu_ms]}ms a request), wrk ${R[wrk_cores]} cores, other processes ${R[other_cores]} cores; $(machine)"

  # The cache off: this measures what the facade adds to the upstream's
  # latency, so every request must go upstream.
  start_server "$latency_ms" CACHE_TTL=0
  echo "load: server pid $server_pid on 127.0.0.1:$port, COMPSHARE_BASE_URL=http://127.0.0.1:$sandbox_port," \
    "COMPSHARE_MAX_INFLIGHT=$MAX_INFLIGHT COMPSHARE_QPS=$QPS COMPSHARE_BURST=$BURST CACHE_TTL=0"
  echo "load: the facade: warm-up ($WARMUP)"
  run_wrk "warmup-${latency_ms}ms" "$WARMUP" "$FACADE_SCRIPT" "http://127.0.0.1:$port/query"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s e2e/load/reference.lua http://127.0.0.1:$port/query"
  run_wrk "${latency_ms}ms" "$DURATION" "$FACADE_SCRIPT" "http://127.0.0.1:$port/query"
  latency_table "${latency_ms}ms"
  stop_server
  stop_sandbox

  diff=$(awk -v a="${R[p50_us]}" -v b="$own" 'BEGIN{printf "%+.1fms", (a - b) / 1000}')
  if awk -v l="$latency_ms" 'BEGIN{exit !(l > 0)}'; then
    verdict=$(awk -v a="${R[p50_us]}" -v b="$own" 'BEGIN{print (a - b <= 2000 ? "met" : "not met")}')
    verdict="$diff over the upstream's own; budget 2ms: $verdict"
  else
    verdict="the facade's own cost; $diff against the upstream's own"
  fi
  report "reference operation @$CONNECTIONS clients (${latency_ms}ms upstream): median $(ms "${R[p50_us]}") ($verdict), p90 $(ms "${R[p90_us]}"), p99 $(ms "${R[p99_us]}"), ${R[rps]} req/s"
  report "  CPU over the run: server ${R[server_cores]} cores (${R[cpu_ms]}ms a request, the facade alone), sandbox (another process) ${R[sandbox_cores]} cores, wrk ${R[wrk_cores]} cores, other processes ${R[other_cores]} cores; $(machine)"
  report "  $(awk -v c="${R[calls]}" -v n="${R[responses]}" 'BEGIN{printf "%d upstream calls (%.2f a request: concurrent identical calls are coalesced)", c, c / n}')"
}

# peak_rss PID: the most resident memory the process has had, in MiB.
peak_rss() { awk '/^VmHWM:/{printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# measure_pages LATENCY_MS: 140 distinct pages (pages.lua), three ways.
#
#   1. Repeated pages, default settings: the pages read again and again
#      after a PAGES_WARMUP warm-up, at CONNECTIONS clients; the cache of
#      answers serves them. Then the same with ANSWER_CACHE=false beside it
#      (the data cache still answers the upstream's part).
#   2. Distinct pages, every request executed: both caches off
#      (ANSWER_CACHE=false, CACHE_TTL=0) and the upstream limits lifted, so
#      that each request goes upstream and runs the whole operation: the
#      CPU a request of execution itself.
#   3. The same at RSS_CONNECTIONS clients: the server's peak RSS.
#
# Each reports requests/s, median, p99, the server's CPU a request and its
# peak RSS.
measure_pages() {
  local latency_ms=$1 setting label calls
  local defaults=(COMPSHARE_MAX_INFLIGHT=8 COMPSHARE_QPS=20 COMPSHARE_BURST=40)
  start_sandbox "$latency_ms"
  echo "load: sandbox pid $sandbox_pid on 127.0.0.1:$sandbox_port, -latency ${latency_ms}ms"

  for setting in "" ANSWER_CACHE=false; do
    label=${setting:-default settings}
    start_server "$latency_ms" "${defaults[@]}" ${setting:+"$setting"}
    echo "load: repeated pages, $label: warm-up ($PAGES_WARMUP)"
    run_wrk "repeated-warmup-${setting:-default}" "$PAGES_WARMUP" "$PAGES_SCRIPT" "http://127.0.0.1:$port/query"
    calls=${R[calls]}
    echo "load: wrk -t${WRK_THREADS:-$THREADS} -c$CONNECTIONS -d$DURATION --latency -s e2e/load/pages.lua http://127.0.0.1:$port/query"
    run_wrk "repeated-${setting:-default}" "$DURATION" "$PAGES_SCRIPT" "http://127.0.0.1:$port/query" allow-no-calls
    latency_table "repeated-${setting:-default}"
    report "repeated pages (140, after a $PAGES_WARMUP warm-up) @$CONNECTIONS clients, $label: ${R[rps]} req/s, median $(ms "${R[p50_us]}"), p99 $(ms "${R[p99_us]}"); server ${R[cpu_ms]}ms CPU a request (${R[server_cores]} cores); peak RSS $(peak_rss "$server_pid") MiB; $((calls + R[calls])) upstream calls over the warm-up and the run"
    stop_server
  done

  for clients in "$CONNECTIONS" "$RSS_CONNECTIONS"; do
    start_server "$latency_ms" ANSWER_CACHE=false CACHE_TTL=0
    CONNECTIONS=$clients run_wrk "distinct-warmup-${clients}" "$WARMUP" "$PAGES_SCRIPT" "http://127.0.0.1:$port/query"
    echo "load: wrk -t${WRK_THREADS:-$THREADS} -c$clients -d$DURATION --latency -s e2e/load/pages.lua http://127.0.0.1:$port/query (ANSWER_CACHE=false CACHE_TTL=0)"
    CONNECTIONS=$clients run_wrk "distinct-${clients}" "$DURATION" "$PAGES_SCRIPT" "http://127.0.0.1:$port/query"
    report "distinct pages, every request executed (both caches off, upstream limits lifted) @$clients clients: ${R[rps]} req/s, median $(ms "${R[p50_us]}"), p99 $(ms "${R[p99_us]}"); server ${R[cpu_ms]}ms CPU a request (${R[server_cores]} cores); peak RSS $(peak_rss "$server_pid") MiB; ${R[calls]} upstream calls"
    stop_server
  done
  stop_sandbox
}

# measure_flood LATENCY_MS: FLOOD_CONNECTIONS clients repeating the
# heaviest query the per-operation limits admit (flood.lua), every request
# executed (the cache of answers off, the data cache warm), first without the in-flight
# bound (MAX_INFLIGHT_COST=0), then with its default: the answers, those
# shed with 503, and the server's peak RSS.
measure_flood() {
  local latency_ms=$1 setting
  start_sandbox "$latency_ms"
  for setting in MAX_INFLIGHT_COST=0 ""; do
    start_server "$latency_ms" ANSWER_CACHE=false ${setting:+"$setting"}
    CONNECTIONS=$FLOOD_CONNECTIONS WRK_TIMEOUT=30s run_wrk "flood-warmup-${setting:-default}" "$WARMUP" "$FLOOD_SCRIPT" "http://127.0.0.1:$port/query"
    CONNECTIONS=$FLOOD_CONNECTIONS WRK_TIMEOUT=30s run_wrk "flood-${setting:-default}" "$DURATION" "$FLOOD_SCRIPT" "http://127.0.0.1:$port/query" allow-no-calls
    report "flood: $FLOOD_CONNECTIONS clients, imageGroups(first: 500) with 20 versions each, ${setting:-MAX_INFLIGHT_COST at its default}: $((R[responses] - R[shed])) answers ($(awk -v n="$((R[responses] - R[shed]))" -v d="${R[duration_us]}" 'BEGIN{printf "%.0f", n / (d / 1e6)}')/s), ${R[shed]} shed with 503, median $(ms "${R[p50_us]}") over all; server peak RSS $(peak_rss "$server_pid") MiB"
    stop_server
  done
  stop_sandbox
}

if [[ $REFERENCE_RUN == 1 ]]; then
  measure "$UPSTREAM_LATENCY_MS"
  if [[ $OVERHEAD_RUN == 1 ]]; then
    measure 0
  fi
fi
if [[ $PAGES_RUN == 1 ]]; then
  # The server on one core, wrk and the sandbox on the other, as on
  # machines of their own: sharing both cores, wrk starved of CPU counts
  # its own waiting in the latencies (p99 about twice as high). PIN=0
  # shares them.
  if [[ $PIN == 1 ]] && (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
    SERVER_WRAP="taskset -c 1" CLIENT_WRAP="taskset -c 0" WRK_THREADS=1
    echo "load: pages: the server pinned to CPU 1, wrk and the sandbox to CPU 0"
  fi
  measure_pages "$UPSTREAM_LATENCY_MS"
  unset SERVER_WRAP CLIENT_WRAP WRK_THREADS
fi
if [[ $FLOOD_RUN == 1 ]]; then
  measure_flood "$UPSTREAM_LATENCY_MS"
fi
echo "load: wrk output, sandbox and server logs and summary.txt in $OUT"
