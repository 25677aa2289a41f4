#!/usr/bin/env bash
# Latency of the reference operation under a bounded loopback load.
#
# Starts bin/imagegraph in sandbox mode on a free loopback port, warms it up,
# and runs wrk at 32 connections for a fixed time against /query with
# e2e/load/reference.lua, twice:
#
#   1. with SANDBOX_LATENCY=20ms: the facade's median against the upstream's
#      own latency (the configured 20 ms);
#   2. with SANDBOX_LATENCY=0: the facade's own cost at that concurrency
#      (set OVERHEAD_RUN=0 to skip it).
#
# The upstream limits are lifted (COMPSHARE_MAX_INFLIGHT=64, COMPSHARE_QPS and
# COMPSHARE_BURST=100000): with the defaults (8 in flight, 20/s) the run would
# measure the limiter's queue, not the facade.
#
# Each run reports the median, p90 and p99 latency and requests/s (from the
# same histogram as wrk's --latency table), the CPU the server, wrk and other
# processes used, the server's CPU per request, and the sandbox's upstream
# call count (GET /sandbox/stats, where the binary has it).
#
# It is a measurement, not a check: it exits non-zero only when the run is
# broken (wrk missing, the server does not start or dies, wrk fails, a socket
# error, a non-200 answer or an "errors" entry in a body), never on a latency.
#
# Needs wrk (Debian: apt-get install -y wrk). Run from anywhere:
#
#   bash e2e/load/run.sh
#
# Settings (environment): IMAGEGRAPH_BIN (default: go build -o bin/imagegraph),
# CONNECTIONS (32), THREADS (2), DURATION (15s), WARMUP (3s),
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
MAX_INFLIGHT=${COMPSHARE_MAX_INFLIGHT:-64}
QPS=${COMPSHARE_QPS:-100000}
BURST=${COMPSHARE_BURST:-100000}
OUT=${LOAD_OUT:-$root/e2e/load/artifacts}
SCRIPT=$here/reference.lua

die() { echo "load: $*" >&2; exit 1; }

command -v wrk >/dev/null 2>&1 || die "wrk not found; install it with: apt-get install -y wrk"
mkdir -p "$OUT"

if [[ -n ${IMAGEGRAPH_BIN:-} ]]; then
  bin=$IMAGEGRAPH_BIN
  [[ -x $bin ]] || die "IMAGEGRAPH_BIN=$bin is not an executable"
else
  bin=$root/bin/imagegraph
  echo "load: building $bin"
  "${GO:-go}" build -o "$bin" . || die "go build failed"
fi

server_pid=""
server_log=""
port=""

stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_free PORT: nothing answers on 127.0.0.1:PORT.
port_free() {
  ! { (exec 3<>"/dev/tcp/127.0.0.1/$1"); } 2>/dev/null
}

# http METHOD PATH: the body of a 2xx answer from the server on $port, or
# failure (bash's /dev/tcp, so that nothing beyond wrk is needed).
http() {
  local line body ok=1
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' "$1" "$2" >&3
  IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
  [[ $line =~ ^HTTP/1\.[01]\ 2[0-9][0-9] ]] && ok=0
  body=$(timeout 2 cat <&3 | sed '1,/^\r\{0,1\}$/d' || true)
  exec 3<&-
  [[ $ok == 0 ]] && printf '%s' "$body"
  return $ok
}

# upstream_calls: the sandbox's call count, from GET /sandbox/stats; empty
# when the binary has no such endpoint.
upstream_calls() {
  local st
  st=$(http GET /sandbox/stats 2>/dev/null) || return 0
  [[ $st =~ \"calls\":([0-9]+) ]] && printf '%s' "${BASH_REMATCH[1]}"
  return 0
}

# start_server LATENCY_MS: the server in sandbox mode, ready, on $port.
start_server() {
  local latency_ms=$1 health
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    server_log=$OUT/server-${latency_ms}ms.log
    # No credentials and no base URL: sandbox mode, whatever the caller's
    # environment holds, so that no traffic leaves the machine.
    env -u COMPSHARE_PUBLIC_KEY -u COMPSHARE_PRIVATE_KEY -u COMPSHARE_BASE_URL \
      PORT="$port" \
      SANDBOX_LATENCY="${latency_ms}ms" \
      COMPSHARE_MAX_INFLIGHT="$MAX_INFLIGHT" \
      COMPSHARE_QPS="$QPS" \
      COMPSHARE_BURST="$BURST" \
      LOG_LEVEL=warn \
      "$bin" >"$server_log" 2>&1 &
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
      if health=$(http GET /healthz); then
        [[ $health == *'"sandbox":true'* ]] || die "the server is not in sandbox mode: $health"
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

declare -A R
# run_wrk NAME DURATION: one wrk run against $port; its result in R.
run_wrk() {
  local name=$1 duration=$2 out=$OUT/wrk-$1.txt tf=$OUT/wrk-$1.time rc=0 kv line
  local s0 s1 h0 h1 t0 t1
  local c0 c1
  c0=$(upstream_calls)
  s0=$(cpu_ticks "$server_pid"); h0=$(host_ticks); t0=$(date +%s.%N)
  { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
      -s "$SCRIPT" "http://127.0.0.1:$port/query" >"$out" 2>&1; } 2>"$tf" || rc=$?
  t1=$(date +%s.%N); h1=$(host_ticks)
  kill -0 "$server_pid" 2>/dev/null || { cat "$out" "$server_log" >&2; die "$name: the server died during the run"; }
  s1=$(cpu_ticks "$server_pid")
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
  local tck; tck=$(getconf CLK_TCK)
  read -r "R[wrk_user]" "R[wrk_sys]" <"$tf"
  R[wall]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
  R[server_cores]=$(awk -v a="$s0" -v b="$s1" -v t="$tck" -v w="${R[wall]}" 'BEGIN{printf "%.2f", (b - a) / t / w}')
  R[wrk_cores]=$(awk -v u="${R[wrk_user]}" -v s="${R[wrk_sys]}" -v w="${R[wall]}" 'BEGIN{printf "%.2f", (u + s) / w}')
  R[host_cores]=$(awk -v a="$h0" -v b="$h1" -v n="$(nproc)" 'BEGIN{split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / (y[2] - x[2]) * n}')
  R[other_cores]=$(awk -v h="${R[host_cores]}" -v s="${R[server_cores]}" -v w="${R[wrk_cores]}" 'BEGIN{o = h - s - w; if (o < 0) o = 0; printf "%.2f", o}')
  R[rps]=$(awk -v n="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN{printf "%.0f", n / (d / 1e6)}')
  R[cpu_ms]=$(awk -v c="${R[server_cores]}" -v r="${R[rps]}" 'BEGIN{printf "%.2f", (r > 0 ? c / r * 1000 : 0)}')
  R[upstream]=""
  if [[ -n $c0 && -n $c1 ]]; then
    R[upstream]=$(awk -v a="$c0" -v b="$c1" -v n="${R[responses]}" 'BEGIN{printf "; %d upstream calls (%.2f a request: concurrent identical calls are coalesced)", b - a, (b - a) / n}')
  fi
}

ms() { awk -v us="$1" 'BEGIN{printf "%.1fms", us / 1000}'; }

summary=$OUT/summary.txt
: >"$summary"
report() { echo "$*" | tee -a "$summary"; }

# measure LATENCY_MS: warm-up and measured run against a fresh server.
measure() {
  local latency_ms=$1 head
  start_server "$latency_ms"
  echo "load: server pid $server_pid on 127.0.0.1:$port, SANDBOX_LATENCY=${latency_ms}ms," \
    "COMPSHARE_MAX_INFLIGHT=$MAX_INFLIGHT COMPSHARE_QPS=$QPS COMPSHARE_BURST=$BURST"
  echo "load: warm-up ($WARMUP)"
  run_wrk "warmup-${latency_ms}ms" "$WARMUP"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s e2e/load/reference.lua"
  run_wrk "${latency_ms}ms" "$DURATION"
  sed -n '/Latency Distribution/,/^[^ ]/p' "$OUT/wrk-${latency_ms}ms.txt" | sed '$d'
  stop_server
  head="reference operation @$CONNECTIONS clients, upstream ${latency_ms}ms:"
  if awk -v l="$latency_ms" 'BEGIN{exit !(l > 0)}'; then
    local diff
    diff=$(awk -v us="${R[p50_us]}" -v l="$latency_ms" 'BEGIN{printf "%+.1fms", us / 1000 - l}')
    report "$head median $(ms "${R[p50_us]}") ($diff), p90 $(ms "${R[p90_us]}"), p99 $(ms "${R[p99_us]}"), ${R[rps]} req/s"
  else
    report "$head median $(ms "${R[p50_us]}") (the facade's own cost), p90 $(ms "${R[p90_us]}"), p99 $(ms "${R[p99_us]}"), ${R[rps]} req/s"
  fi
  report "  CPU over the run: server (with the in-process sandbox) ${R[server_cores]} cores (${R[cpu_ms]}ms a request), wrk ${R[wrk_cores]} cores, other processes ${R[other_cores]} cores; machine ${R[host_cores]} of $(nproc) cores busy; ${R[requests]} requests, none bad${R[upstream]}"
}

measure "$UPSTREAM_LATENCY_MS"
if [[ $OVERHEAD_RUN == 1 ]]; then
  measure 0
fi
echo "load: wrk output, server logs and summary.txt in $OUT"
