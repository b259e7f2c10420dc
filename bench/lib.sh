# shellcheck shell=bash
# lib.sh: what the serving benchmarks (bench/serve, bench/serve_scale) share. Sourced, never run:
#
#   source "$repo/bench/lib.sh"     # after `cd` to the repository; sets BENCH_NAME from the script's name
#
# Every function prints errors as "<script>: ..." and exits on them.
BENCH_NAME=bench/$(basename "$0")
PEER_PYTHON=/usr/bin/python3 # Debian's interpreter: the one bench/setup's python3-* packages are installed for

bench_die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

bench_need_tools() { # bench_need_tools TOOL...: each on PATH (or in /usr/sbin), else exit with a hint
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
            bench_die "$tool is missing: run scripts/setup (and bench/setup for the peers)"
        fi
    done
}

bench_need_two_cores() {
    [[ $(nproc) -ge 2 ]] || bench_die "needs 2 cores (server on core 0, the load generator on core 1); this machine has $(nproc)"
}

bench_build() { # sets build; builds a release tree first when RECD_BUILD_DIR is unset
    build=${RECD_BUILD_DIR:-build}
    if [[ -z "${RECD_BUILD_DIR:-}" ]]; then
        ./scripts/build release >/dev/null
    fi
}

find_bin() { # find_bin NAME: the absolute path of executable NAME in $build
    local path
    path=$(find "$build" -type f -name "$1" -perm -u+x -not -path '*/CMakeFiles/*' -print -quit)
    [[ -n "$path" ]] || bench_die "$1 not built in $build"
    if [[ $path == /* ]]; then echo "$path"; else echo "$PWD/$path"; fi
}

bench_openblas_coretype() { # OpenBLAS's kernel for this CPU, unless OPENBLAS_CORETYPE is set (Debian's default is generic)
    if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
        if grep -qw avx512f /proc/cpuinfo; then
            export OPENBLAS_CORETYPE=SkylakeX
        elif grep -qw avx2 /proc/cpuinfo; then
            export OPENBLAS_CORETYPE=Haswell
        fi
    fi
}

recd_flags() { # recd_flags BINARY: the flags that keep that recd on one worker and, when it has a scoring pool, one scorer
    local flags=(--threads 1) help
    # the help text first, then the match: `--help | grep -q` under pipefail fails at random when grep quits early
    help=$("$1" --help 2>&1 || true)
    if [[ $help == *--score-threads* ]]; then
        flags+=(--score-threads 1)
    fi
    echo "${flags[*]}"
}

bench_baseline_name() { # the name of RECD_BASELINE_BUILD_DIR's recd in the tables: RECD_BASELINE_NAME, default baseline
    local name=${RECD_BASELINE_NAME:-baseline}
    # the report pairs servers by name: recd, the peers, faiss* and *-batch-N are taken
    [[ $name =~ ^[a-z][a-z0-9_.]*$ && ! $name =~ ^(recd|nginx|fastapi|faiss.*)$ ]] ||
        bench_die "RECD_BASELINE_NAME must be lower-case letters, digits, _ or ., and not recd, nginx, fastapi or faiss..."
    echo "$name"
}

free_port() {
    "$PEER_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # wait_http URL PID [TENTHS]: until URL answers 200 (default 10 s), or the process died
    local _
    for _ in $(seq "${3:-100}"); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$2" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

peer_python_has() { # peer_python_has MODULE...: Debian's python3 imports them all
    "$PEER_PYTHON" -c "import $(
        IFS=,
        echo "$*"
    )" 2>/dev/null
}

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # cpu_ticks PID...: utime + stime of those processes (all their threads), in clock ticks
    local total=0 pid f
    for pid in "$@"; do
        for f in /proc/"$pid"/task/*/stat; do
            [[ -r $f ]] || continue
            # fields 14 and 15 after the command name, which may hold spaces: cut at the last ')'
            total=$((total + $(sed 's/.*) //' "$f" | awk '{print $12 + $13}')))
        done
    done
    echo "$total"
}

# with_cpu "PIDS" OUT COMMAND...: runs COMMAND with stdout to OUT (stderr to OUT.err), then prints the RESULT line of OUT
# with cpu_us_per_req (the CPU time those processes used during the run, per answered request) and client_cpu_pct (the
# load generator's user + system time over its wall time, in % of one core: near 100, the generator was the limit)
# appended. A command that runs more than its generator writes the generator's own "WALL USER SYS" seconds to
# OUT.client (time_client does), which then replaces the timing of the whole command.
with_cpu() {
    local pids=$1 out=$2 before after line client
    shift 2
    rm -f "$out.client"
    # shellcheck disable=SC2086 # a list of pids
    before=$(cpu_ticks $pids)
    time_client "$out.time" "$@" >"$out" 2>"$out.err"
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    line=$(grep '^RESULT ' "$out") || bench_die "no RESULT line from: $* (output in $out, $out.err)"
    client=$out.time
    [[ -s $out.client ]] && client=$out.client
    awk -v l="$line" -v d=$((after - before)) -v hz="$clk_tck" -v t="$(cat "$client")" 'BEGIN {
        match(l, /requests=[0-9]+/); n = substr(l, RSTART + 9, RLENGTH - 9)
        split(t, c, " ")
        printf "%s cpu_us_per_req=%.2f client_cpu_pct=%.0f\n", l, (n > 0 ? d * 1e6 / hz / n : 0),
            (c[1] > 0 ? (c[2] + c[3]) * 100 / c[1] : 0) }'
}

time_client() { # time_client FILE COMMAND...: runs COMMAND, writes "WALL USER SYS" (seconds, it and its children) to FILE
    local file=$1 TIMEFORMAT='%R %U %S' rc=0
    shift
    { time "$@" 2>&3 3>&-; } 3>&2 2>"$file" || rc=$?
    return "$rc"
}

field() { # field LINE NAME: the value of NAME=... in LINE
    sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"
}

# h2load_result LOGFILE H2LOAD_OUTPUT: h2load's run as a RESULT line (p50/p90/p99 from its per-request log, whose columns
# are start time in microseconds, status, microseconds until the end of the answer)
h2load_result() {
    "$PEER_PYTHON" - "$1" "$2" <<'EOF'
import re, sys
lat, non2xx = [], 0
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 3:
        lat.append(int(parts[2]))
        non2xx += not (200 <= int(parts[1]) <= 299)
lat.sort()
out = open(sys.argv[2]).read()
m = re.search(r"finished in ([0-9.]+)(ms|s), ([0-9.]+) req/s", out)
secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1) if m else 0
failed = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
errors = sum(int(x) for x in failed.groups()) if failed else 0
pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else 0
print("RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d non2xx=%d socket_errors=%d" %
      (len(lat), secs * 1e6, float(m.group(3)) if m else 0, pct(50), pct(90), pct(99), non2xx, errors))
EOF
}
