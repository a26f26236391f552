#!/usr/bin/env bash
# DNS benchmark: dnsperf against dialtone and against dnsmasq serving the same
# records (the issue's CIC example: hosts with PTR, a provision name, SRV with
# glue), one after the other in one run, in the same pair of network
# namespaces. Prints queries per second, the ratio, and each server's CPU time
# per query.
#
# Run as root:  bash bench/dns.sh            (about 1 minute)
# Environment:  SECONDS_PER_RUN (default 15), CLIENTS (dnsperf -c, default 4)
#
# With two or more cores the server runs on core 0 and dnsperf on core 1.
# Nothing is served on this machine's interfaces.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
CLIENTS=${CLIENTS:-4}

. bench/lib.sh
bench_setup dns 10.250.0.1/24 10.250.0.2/24 \
    dnsperf:dnsperf dnsmasq:dnsmasq-base dig:bind9-dnsutils taskset:util-linux

# The same questions for both: A, A with two records, SRV with glue, PTR.
cat >"$WORK/queries" <<'Q'
vm40ic1.lab.voip A
vm40ic2.lab.voip A
provision.lab.voip A
_sip._tcp.lab.voip SRV
_sip._udp.lab.voip SRV
_sips._tcp.lab.voip SRV
151.1.250.10.in-addr.arpa PTR
Q

start_dialtone() {
    mkdir -p "$WORK/dialtone"
    cat >"$WORK/dialtone/dialtone.toml" <<T
[server]
state_dir = "$WORK/dialtone/state"
interfaces = ["bsrv0"]

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
  { srv = "_sips._tcp", port = 8061 },
]
T
    ip netns exec "$SRV" $PIN_SERVER "$DIALTONE" serve --config "$WORK/dialtone/dialtone.toml" \
        2>"$WORK/dialtone/log" &
    SERVER_PID=$!
}

start_dnsmasq() {
    mkdir -p "$WORK/dnsmasq"
    ip netns exec "$SRV" $PIN_SERVER dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --interface=bsrv0 --bind-interfaces --user=root --group=root --no-resolv --no-hosts \
        --local=/lab.voip/ --local=/1.250.10.in-addr.arpa/ --auth-ttl=60 --local-ttl=60 \
        --host-record=vm40ic1.lab.voip,10.250.1.151 --host-record=vm40ic2.lab.voip,10.250.1.152 \
        --address=/provision.lab.voip/10.250.1.151 \
        --srv-host=_sip._udp.lab.voip,vm40ic1.lab.voip,8060,0,0 \
        --srv-host=_sip._udp.lab.voip,vm40ic2.lab.voip,8060,0,0 \
        --srv-host=_sip._tcp.lab.voip,vm40ic1.lab.voip,8060,0,0 \
        --srv-host=_sip._tcp.lab.voip,vm40ic2.lab.voip,8060,0,0 \
        --srv-host=_sips._tcp.lab.voip,vm40ic1.lab.voip,8061,0,0 \
        --srv-host=_sips._tcp.lab.voip,vm40ic2.lab.voip,8061,0,0 \
        --pid-file="$WORK/dnsmasq/pid" --log-facility="$WORK/dnsmasq/log" 2>"$WORK/dnsmasq/stderr" &
    SERVER_PID=$!
}

declare -A QPS CPU
for server in dialtone dnsmasq; do
    echo "== $server"
    "start_$server"
    for _ in $(seq 1 100); do
        ip netns exec "$CLI" dig @10.250.0.1 +time=1 +tries=1 +short vm40ic1.lab.voip 2>/dev/null \
            | grep -q 10.250.1.151 && break
        sleep 0.1
    done
    # Every answer checked once before the load.
    ip netns exec "$CLI" dig @10.250.0.1 +short _sip._tcp.lab.voip SRV | sed 's/^/  /'
    t0=$(cpu_ticks)
    out=$(ip netns exec "$CLI" $PIN_LOAD dnsperf -s 10.250.0.1 -d "$WORK/queries" \
        -l "$SECONDS_PER_RUN" -c "$CLIENTS" -q 200 2>&1)
    t1=$(cpu_ticks)
    qps=$(awk '/Queries per second:/ { printf "%d", $4 }' <<<"$out")
    lost=$(awk '/Queries lost:/ { print $3, $4 }' <<<"$out")
    completed=$(awk '/Queries completed:/ { print $3 }' <<<"$out")
    QPS[$server]=$qps
    CPU[$server]=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$completed" \
        'BEGIN { printf "%.1f", (n > 0 ? 1e6 * t / hz / n : 0) }')
    printf '  %-8s %8d queries/s   lost %s   server CPU %s us/query\n' "$server" "$qps" "$lost" "${CPU[$server]}"
    stop_server
done
echo
echo "== results (dnsperf -c $CLIENTS -q 200, ${SECONDS_PER_RUN} s each${PIN_NOTE})"
for s in dialtone dnsmasq; do
    printf '  %-8s %8d queries/s   %s us CPU/query\n' "$s" "${QPS[$s]}" "${CPU[$s]}"
done
awk -v a="${QPS[dialtone]}" -v b="${QPS[dnsmasq]}" 'BEGIN { if (b > 0) printf "  dialtone / dnsmasq %.2fx\n", a / b }'
