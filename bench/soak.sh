#!/usr/bin/env bash
# Soak: dialtone under mixed load for 30 minutes, with a DHCP flood and a MAC
# sweep in the middle. Every 10 s it samples the server's resident memory,
# open descriptors, threads and CPU time into $WORK/soak.csv; it prints one
# line a minute and, at the end, whether memory and descriptors stayed flat
# after the first five minutes (a leak shows as a slope), with the server's
# counters of dropped and refused input and a last check that it answers.
#
# The load, all the time:
#   DHCP  perfdhcp as a relay: 40 new exchanges a second over 20,000 clients
#         and 20 renewals a second (the flood guard at its default, 200 new
#         clients a second)
#   DNS   dnsperf at 300 queries a second
#   TFTP  curl fetching a 4 MiB image in a loop (blksize 1468), and atftp
#         fetching a 1 MiB one lockstep in a loop
#   HTTP  curl fetching the 4 MiB image in a loop, and one asking ranges of
#         64 KiB in a loop
# From 40 % to 50 % of the run:
#   a DISCOVER flood (a second perfdhcp: 2,000 new clients a second over
#   200,000 MACs) and a MAC sweep (<MAC>.cfg for random MACs of one OUI over
#   HTTP and TFTP, one client asking as fast as it is answered).
#
# Run as root:  bash bench/soak.sh          (SOAK_MINUTES, default 30)
# Nothing is served on this machine's interfaces: everything runs in two
# namespaces made here and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_MINUTES=${SOAK_MINUTES:-30}
SAMPLE_SECONDS=10

. bench/lib.sh
bench_setup soak 10.20.0.1/16 10.20.0.2/16 \
    perfdhcp:kea-admin dnsperf:dnsperf atftp:atftp curl:curl dig:bind9-dnsutils taskset:util-linux
# The flood's relay address (a second perfdhcp needs its own port 67).
ip -n "$CLI" addr add 10.20.0.3/16 dev bcli0

TREE=$WORK/tree
mkdir -p "$TREE" "$WORK/out"
head -c $((4 << 20)) /dev/urandom >"$TREE/image4.img"
head -c $((1 << 20)) /dev/urandom >"$TREE/image1.img"
# A phone's private file: what a MAC sweep is after.
echo 'account.1.password = "secret"' >"$TREE/00908f123456.cfg"

cat >"$WORK/queries" <<'Q'
vm40ic1.lab.voip A
provision.lab.voip A
_sip._tcp.lab.voip SRV
_sip._udp.lab.voip SRV
151.1.250.10.in-addr.arpa PTR
Q

mkdir -p "$WORK/dialtone"
cat >"$WORK/dialtone/dialtone.toml" <<T
[server]
state_dir = "$WORK/dialtone/state"
interfaces = ["bsrv0"]

[dhcp]
lease_time = "10m"

[[dhcp.subnet]]
cidr = "10.20.0.0/16"
pool = ["10.20.1.0-10.20.255.254"]
router = "10.20.0.1"

[dns]
zone = "lab.voip"
ttl = "60s"
[[dns.host]]
name = "vm40ic1"
ip = "10.250.1.151"
[[dns.host]]
name = "vm40ic2"
ip = "10.250.1.152"
[[dns.switchover]]
name = "cic"
members = ["vm40ic1", "vm40ic2"]
provision_name = "provision"
services = [
  { srv = "_sip._udp", port = 8060 },
  { srv = "_sip._tcp", port = 8060 },
]

[files]
root = "$TREE"
http = ["0.0.0.0:8088"]
T
ip netns exec "$SRV" $PIN_SERVER "$DIALTONE" serve --config "$WORK/dialtone/dialtone.toml" \
    2>"$WORK/dialtone/log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    ip netns exec "$CLI" dig @10.20.0.1 +time=1 +tries=1 +short vm40ic1.lab.voip 2>/dev/null \
        | grep -q 10.250.1.151 && break
    sleep 0.1
done

TOTAL=$((SOAK_MINUTES * 60))
LOADS=()
in_cli() { ip netns exec "$CLI" $PIN_LOAD "$@"; }
forever() { # runs "$@" in a loop until killed
    while :; do "$@" >/dev/null 2>&1 || sleep 0.2; done
}

in_cli perfdhcp -4 -l 10.20.0.2 -r 40 -R 20000 -f 20 -p "$TOTAL" -W 2000000 10.20.0.1 \
    >"$WORK/perfdhcp.out" 2>&1 &
LOADS+=($!)
in_cli dnsperf -s 10.20.0.1 -d "$WORK/queries" -l "$TOTAL" -Q 300 -c 2 >"$WORK/dnsperf.out" 2>&1 &
LOADS+=($!)
forever in_cli curl -s --tftp-blksize 1468 -o "$WORK/out/t4" tftp://10.20.0.1/image4.img &
LOADS+=($!)
forever in_cli atftp --get -r image1.img -l "$WORK/out/a1" 10.20.0.1 &
LOADS+=($!)
forever in_cli curl -s -o "$WORK/out/h4" http://10.20.0.1:8088/image4.img &
LOADS+=($!)
ranges() {
    local i
    for i in $(seq 0 63); do
        curl -s -r "$((i * 65536))-$((i * 65536 + 65535))" -o /dev/null \
            http://10.20.0.1:8088/image4.img || true
    done
}
forever in_cli bash -c "$(declare -f ranges); ranges" &
LOADS+=($!)

sweep() {
    local mac
    while :; do
        mac=$(printf '00908f%06x' $(((RANDOM * 32768 + RANDOM) % 16777216)))
        curl -s -o /dev/null "http://10.20.0.1:8088/$mac.cfg" || true
        curl -s -o /dev/null --max-time 1 "tftp://10.20.0.1/$mac.cfg" || true
    done
}

# The loops first (they would start their client again), then everything
# left in the load namespace.
stop_loads() {
    local p
    for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns pids "$CLI" 2>/dev/null | xargs -r kill 2>/dev/null || true
    # Not a bare `wait`: the server is a child too.
    for p in "${LOADS[@]}"; do wait "$p" 2>/dev/null || true; done
    LOADS=()
}
trap 'stop_loads; bench_cleanup' EXIT

fds() { ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l; }
threads() { awk '/^Threads/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }

echo "soak: $SOAK_MINUTES minutes${PIN_NOTE}; samples in $WORK/soak.csv"
echo "seconds,rss_kib,fds,threads,cpu_ticks,event" >"$WORK/soak.csv"
printf '  %6s %9s %5s %7s %9s  %s\n' minute "RSS KiB" fds threads "CPU s" event
FLOOD_FROM=$((TOTAL * 40 / 100))
FLOOD_TO=$((TOTAL * 50 / 100))
FLOOD_PIDS=
start=$(date +%s)
hz=$(getconf CLK_TCK)
while :; do
    now=$(($(date +%s) - start))
    [ "$now" -le "$TOTAL" ] || break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "dialtone exited" >&2; tail -20 "$WORK/dialtone/log" >&2; exit 1; }
    event=
    if [ -z "$FLOOD_PIDS" ] && [ "$now" -ge "$FLOOD_FROM" ] && [ "$now" -lt "$FLOOD_TO" ]; then
        in_cli perfdhcp -4 -l 10.20.0.3 -r 2000 -R 200000 -p $((FLOOD_TO - now)) 10.20.0.1 \
            >"$WORK/flood.out" 2>&1 &
        FLOOD_PIDS="$!"
        in_cli bash -c "$(declare -f sweep); sweep" &
        FLOOD_PIDS="$FLOOD_PIDS $!"
        event="flood and MAC sweep start"
    elif [ -n "$FLOOD_PIDS" ] && [ "$FLOOD_PIDS" != done ] && [ "$now" -ge "$FLOOD_TO" ]; then
        for p in $FLOOD_PIDS; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
        FLOOD_PIDS=done
        event="flood and MAC sweep end"
    fi
    rss=$(rss_kib) fd=$(fds) th=$(threads) cpu=$(cpu_ticks)
    echo "$now,$rss,$fd,$th,$cpu,$event" >>"$WORK/soak.csv"
    if [ $((now % 60)) -lt "$SAMPLE_SECONDS" ] || [ -n "$event" ]; then
        printf '  %6.1f %9d %5d %7d %9.1f  %s\n' "$(awk -v s="$now" 'BEGIN { print s / 60 }')" \
            "$rss" "$fd" "$th" "$(awk -v t="$cpu" -v hz="$hz" 'BEGIN { print t / hz }')" "$event"
    fi
    sleep "$SAMPLE_SECONDS"
done
stop_loads

echo
echo "== memory and descriptors"
# After the first 5 minutes (the lease table fills up to its 20,000
# clients), and over the last third of the run (after the flood: what a
# leak would keep growing).
awk -F, -v total="$TOTAL" 'NR > 1 {
        if ($1 >= 300) { span("after 5 min", $2, $3) }
        if ($1 >= total * 2 / 3) { span("last third", $2, $3) }
    }
    function span(k, r, f) {
        if (!(k in n)) { rmin[k] = r; rmax[k] = r; fmin[k] = f; fmax[k] = f; first[k] = r; order[++keys] = k }
        if (r < rmin[k]) rmin[k] = r; if (r > rmax[k]) rmax[k] = r
        if (f < fmin[k]) fmin[k] = f; if (f > fmax[k]) fmax[k] = f
        last[k] = r; n[k]++
    }
    END {
        if (keys == 0) { print "  (the run was shorter than 5 minutes)"; exit }
        for (i = 1; i <= keys; i++) {
            k = order[i]
            printf "  %-12s RSS %d-%d KiB (first %d, last %d: %+.1f %%), open descriptors %d-%d\n",
                k, rmin[k], rmax[k], first[k], last[k], 100 * (last[k] - first[k]) / first[k], fmin[k], fmax[k]
        }
    }' "$WORK/soak.csv"
kill -USR1 "$SERVER_PID"
sleep 1
echo "== dialtone's counters"
grep -o 'counters=.*' "$WORK/dialtone/log" | tail -1 | tr -d '"' | tr ' ' '\n' | sed 's/^counters=//; s/^/  /' || true
echo "== warnings and errors in the log (by message)"
{ grep -E ' (WARN|ERROR) ' "$WORK/dialtone/log" || true; } | sed -E 's/^[^ ]+ +[A-Z]+ //' | cut -c1-110 \
    | sort | uniq -c | sort -rn | head -12 | sed 's/^/  /'
grep -q panicked "$WORK/dialtone/log" && echo "  PANIC in the log" || true
echo "== still answering"
ip netns exec "$CLI" dig @10.20.0.1 +time=2 +tries=1 +short vm40ic1.lab.voip | sed 's/^/  /'
awk '/Queries completed:|Queries lost:/' "$WORK/dnsperf.out" | sed 's/^ */  dnsperf: /'
awk '/Statistics for: REQUEST-ACK/ { s = 1 } s && /^(sent|received) packets:/ { print "  perfdhcp REQUEST-ACK " $0 }' "$WORK/perfdhcp.out" | head -2 || true
cp "$WORK/soak.csv" "${SOAK_CSV:-/tmp/dialtone-soak.csv}"
echo "samples copied to ${SOAK_CSV:-/tmp/dialtone-soak.csv}"
