#!/usr/bin/env bash
# Status page benchmark: how long dialtone takes to make its status page and
# /metrics for a site of 1,000 phones (the inventory) and 1,000 leases, and
# whether reading them slows DHCP: the rate of full DORA exchanges perfdhcp
# sustains with the page and /metrics each fetched ten times a second,
# against the same trial without them, interleaved. No other server has a
# status page to compare with (dnsmasq has none; Kea needs Stork and a
# database), so the anchor here is dialtone itself without the page.
#
# Run as root:  bash bench/site.sh            (about 3 minutes)
# Environment:  PHONES (default 1000), RATE (offered DORA/s, default 40000),
#               (python3 is the page's reader)
#               TRIAL_SECONDS (default 10), ROUNDS (default 3)
#
# Nothing is served on this machine's interfaces: everything runs inside two
# namespaces created here and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PHONES=${PHONES:-1000}
RATE=${RATE:-40000}
TRIAL_SECONDS=${TRIAL_SECONDS:-10}
ROUNDS=${ROUNDS:-3}

. bench/lib.sh

bench_setup site 10.30.0.1/16 10.30.0.2/16 perfdhcp:kea-admin curl:curl taskset:util-linux

dir=$WORK/dialtone
mkdir -p "$dir"
# The inventory: $PHONES AudioCodes phones with extensions and passwords.
awk -v n="$PHONES" 'BEGIN {
    for (i = 0; i < n; i++) {
        printf "[[phone]]\nname = \"Agent%04d\"\nmac = \"00:90:8f:%02x:%02x:%02x\"\nmodel = \"450HD\"\nextension = \"%d\"\nsip_password = \"pw%d\"\nregister = \"10.30.0.5\"\n\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256, 7000 + i, i
    }
}' >"$dir/phones.toml"
cat >"$dir/dialtone.toml" <<TOML
[server]
state_dir = "$dir/state"
interfaces = ["bsrv0"]

[dhcp]
lease_time = "1h"
new_clients_per_second = 0
# perfdhcp's $PHONES clients each ask many times a second here; a phone's
# own limit (20 packets a second) would drop them.
rate_limit = 1000000

[[dhcp.subnet]]
cidr = "10.30.0.0/16"
pool = ["10.30.1.0-10.30.255.254"]
router = "10.30.0.1"

[inventory]
file = "$dir/phones.toml"

[admin]
listen = "127.0.0.1:8080"
TOML
ip netns exec "$SRV" $PIN_SERVER "$DIALTONE" serve --config "$dir/dialtone.toml" 2>"$dir/log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    ip netns exec "$SRV" curl -sf -o /dev/null http://127.0.0.1:8080/health && break
    sleep 0.1
done

# perfdhcp reuses $PHONES clients: the table holds $PHONES leases.
# The load core's busy and idle ticks (core 1, or the only core).
load_core() { awk -v c="cpu$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }

trial() { # rate seconds -> "offered achieved lost_percent server_core_percent load_core_percent"
    local t0 t1 b0 i0 b1 i1
    t0=$(cpu_ticks)
    read -r b0 i0 < <(load_core)
    local discovers acks
    read -r discovers acks < <({ ip netns exec "$CLI" $PIN_LOAD perfdhcp -4 -l 10.30.0.2 -r "$1" \
        -R "$PHONES" -p "$2" -W 2000000 -g single 10.30.0.1 2>&1 || true; } | perfdhcp_counts)
    awk -v rate="$1" -v seconds="$2" -v d="$discovers" -v a="$acks" 'BEGIN {
        lost = d > 0 ? 100 * (d - a) / d : 100
        printf "%d %.0f %.2f", rate, a / seconds, lost }'
    t1=$(cpu_ticks)
    read -r b1 i1 < <(load_core)
    awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$2" -v b=$((b1 - b0)) -v i=$((i1 - i0)) \
        'BEGIN { printf " %.0f %.0f\n", 100 * t / hz / s, 100 * b / (b + i) }'
}

echo "filling the table: $PHONES leases"
trial 1000 3 >/dev/null
sleep 2

fetch_times() { # path count -> the server's own time (its Server-Timing header, ms)
    local path=$1 n=$2 i
    for i in $(seq 1 "$n"); do
        sleep 1.1 # a page is made at most once a second per filter
        ip netns exec "$SRV" curl -s -D - -o /dev/null "http://127.0.0.1:8080$path" |
            tr -d '\r' | sed -n 's/^server-timing: made;dur=\([0-9.]*\).*/\1/Ip'
    done | sort -n | awk '{ a[NR] = $1 } END { printf "median %.1f ms, max %.1f ms (%d requests)\n", a[int((NR + 1) / 2)], a[NR], NR }'
}

rows=$(ip netns exec "$SRV" curl -s http://127.0.0.1:8080/ | grep -c '<tr class="phone"' || true)
bytes=$(ip netns exec "$SRV" curl -s http://127.0.0.1:8080/ | wc -c)
echo "status page: $rows phone rows, $bytes bytes"
echo "  server time to make it: $(fetch_times / 15)"
echo "  server time to make /metrics: $(fetch_times /metrics 15)"

# One keep-alive client fetching / and /metrics ten times a second each
# (a browser left open on the page, and a tight Prometheus), on the load
# generator's core; it reads every byte.
cat >"$dir/reader.py" <<'PY'
import http.client, time, sys
c = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
n = 0
while True:
    t = time.monotonic()
    for path in ("/", "/metrics"):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        n += 1
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
PY
reader() { exec ip netns exec "$SRV" $PIN_LOAD python3 "$dir/reader.py"; }

echo "DHCP at $RATE DORA/s offered, $PHONES clients, $TRIAL_SECONDS s trials$PIN_NOTE"
without=() with=()
for r in $(seq 1 "$ROUNDS"); do
    read -r _ a l c k < <(trial "$RATE" "$TRIAL_SECONDS")
    echo "  round $r without the page: $a/s achieved, $l % lost, server $c % of its core, load core $k % busy"
    without+=("$a")
    reader &
    READER=$!
    read -r _ a l c k < <(trial "$RATE" "$TRIAL_SECONDS")
    kill "$READER" 2>/dev/null || true
    wait "$READER" 2>/dev/null || true
    echo "  round $r with the page and /metrics read 10 times a second: $a/s achieved, $l % lost, server $c % of its core, load core $k % busy"
    with+=("$a")
done
printf '%s\n' "${without[@]}" | awk '{ s += $1 } END { printf "%.0f\n", s / NR }' >"$dir/wo"
printf '%s\n' "${with[@]}" | awk '{ s += $1 } END { printf "%.0f\n", s / NR }' >"$dir/wi"
awk -v wo="$(cat "$dir/wo")" -v wi="$(cat "$dir/wi")" 'BEGIN {
    printf "mean achieved: %d/s without, %d/s with the page read: %.1f %% of the rate without\n", wo, wi, 100 * wi / wo }'
