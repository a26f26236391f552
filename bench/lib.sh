# Shared by the benchmark scripts (sourced, not run): root check, packages,
# the release build, a pair of namespaces joined by a veth pair, core pinning,
# and the server process's CPU time and memory. Nothing is served on this
# machine's interfaces: everything runs in the two namespaces made here,
# removed on exit.

# bench_setup NAME SERVER_CIDR LOAD_CIDR CMD:PACKAGE...
#   Sets DIALTONE, SRV, CLI (namespaces; bsrv0 and bcli0 inside), WORK (a
#   directory on disk, not tmpfs, so fsync costs what it costs), PIN_SERVER,
#   PIN_LOAD and PIN_NOTE.
bench_setup() {
    local name=$1 server_cidr=$2 load_cidr=$3
    shift 3
    [ "$(id -u)" = 0 ] || { echo "bench/$name.sh needs root (network namespaces)" >&2; exit 1; }
    local need=() pair
    for pair in ip:iproute2 "$@"; do
        command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        echo "installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    cargo build --release --quiet
    DIALTONE=$PWD/target/release/dialtone

    SRV=dt-$name-srv-$$
    CLI=dt-$name-cli-$$
    WORK=$(mktemp -d "/var/tmp/dialtone-$name-bench.XXXXXX")
    SERVER_PID=
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns add "$SRV"
    ip netns add "$CLI"
    ip link add bsrv0 netns "$SRV" type veth peer name bcli0 netns "$CLI"
    ip -n "$SRV" addr add "$server_cidr" dev bsrv0
    ip -n "$CLI" addr add "$load_cidr" dev bcli0
    for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
    ip -n "$SRV" link set bsrv0 up
    ip -n "$CLI" link set bcli0 up

    # With two or more cores, the server runs on core 0 and the load
    # generator on core 1, so they never compete for a core.
    if [ "$(nproc)" -ge 2 ]; then
        PIN_SERVER="taskset -c 0" PIN_LOAD="taskset -c 1" PIN_NOTE="; server on core 0, load on core 1"
    else
        PIN_SERVER="" PIN_LOAD="" PIN_NOTE=""
    fi
}

bench_cleanup() {
    stop_server
    local ns
    for ns in "$SRV" "$CLI"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work kept in $WORK"; else rm -rf "$WORK"; fi
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# The server's own figures (`ip netns exec` and `taskset` exec it, so the PID
# started is the server's): CPU ticks used so far, resident memory in KiB.
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }

# perfdhcp's report on stdin -> "discovers acks": DISCOVERs sent and ACKs
# received in the run.
perfdhcp_counts() {
    awk '/Statistics for: DISCOVER-OFFER/ { sect = "do" }
         /Statistics for: REQUEST-ACK/ { sect = "ra" }
         /^sent packets:/ && sect == "do" { discovers = $3 }
         /^received packets:/ && sect == "ra" { acks = $3 }
         END { print discovers + 0, acks + 0 }'
}
