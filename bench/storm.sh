#!/bin/bash
# The power cut: N phones of every family boot at once (within one second)
# against dialtone, and against the stack a user would assemble instead:
# dnsmasq (DHCP with the same classes and options, DNS with the same records,
# TFTP), nginx from Debian serving the same tree over HTTP, with every
# phone's generated configuration written into it (no per-phone privacy
# there), and chrony serving time (its local clock at stratum 10, as
# dialtone's is). Interleaved rounds in one run, in the same pair of namespaces.
#
# The phones are bench/storm.rs (one process, one thread): DHCP with each
# family's identity and RFC 2131's retransmissions, DNS, SNTP, firmware (10 %
# of the phones that read one fetch it whole, the rest read its first KiB),
# the family's files over HTTP or TFTP, and a SIP REGISTER answering the
# digest challenge of the call server pair, which the tool answers itself.
#
# Usage:        sudo bash bench/storm.sh
# Environment:  SIZES (default "100 500 1000"), ROUNDS (default 2),
#               STACKS (default "dialtone anchor"; one of them alone for
#               a closer look), PLOT (default docs/storm-1000.png: phones done over time at
#               N = 1000, from the last round), KEEP_WORK=1 keeps the files.
# Prints one line per round and stack, then a table per N.
# Takes about 5 minutes with the defaults, about 15 with SIZES="100 500 1000 5000".
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SIZES=${SIZES:-"100 500 1000"}
ROUNDS=${ROUNDS:-2}
PLOT=${PLOT:-docs/storm-1000.png}
STACKS=${STACKS:-"dialtone anchor"}
SERVER_IP=10.64.0.1
# The pool (10.64.1.0-10.64.31.255) as prefixes: `local` routes in the
# phones' namespace make every address of it the tool's, and the server
# reaches them through the phones' side (one neighbour entry, not one per
# phone: the kernel's neighbour table is shared by every namespace and
# holds 1,024 entries by default).
POOL_PREFIXES="10.64.1.0/24 10.64.2.0/23 10.64.4.0/22 10.64.8.0/21 10.64.16.0/20"

bench_setup storm $SERVER_IP/18 10.64.63.254/18 \
    dnsmasq:dnsmasq-base nginx:nginx dig:bind9-dnsutils curl:curl taskset:util-linux \
    chronyd:chrony python3:python3
# Debian's Python and its matplotlib, whatever python3 comes first in PATH.
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null
cargo build --release --quiet --example storm
STORM=$PWD/target/release/examples/storm

ip -n "$CLI" addr add 10.64.63.1/18 dev bcli0
ip -n "$CLI" addr add 10.64.63.2/18 dev bcli0
for p in $POOL_PREFIXES; do
    ip -n "$CLI" route add local "$p" dev lo
    ip -n "$SRV" route add "$p" via 10.64.63.254 dev bsrv0
done

# Every process of the server's namespace: CPU ticks, and the sum of their
# peak resident memory in KiB.
ns_ticks() {
    local t=0 p
    for p in $(ip netns pids "$SRV"); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}
ns_peak_kib() {
    local m=0 p
    for p in $(ip netns pids "$SRV"); do
        m=$((m + $(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo $m
}
stop_ns() {
    ip netns pids "$SRV" | xargs -r kill 2>/dev/null || true
    local i
    for i in $(seq 50); do
        [ -z "$(ip netns pids "$SRV")" ] && break
        sleep 0.1
    done
    ip netns pids "$SRV" | xargs -r kill -9 2>/dev/null || true
    SERVER_PID=
}

# One SNTP question: whether the time service answers.
sntp_answers() {
    ip netns exec "$CLI" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.sendto(b"\x23" + bytes(47), (sys.argv[1], 123))
sys.exit(0 if len(s.recv(68)) >= 48 else 1)' "$SERVER_IP" 2>/dev/null
}

# Waits until HTTP, DNS and SNTP answer.
wait_ready() {
    local i
    for i in $(seq 100); do
        if ip netns exec "$CLI" curl -s -o /dev/null --max-time 1 "http://$SERVER_IP:8088/ready" &&
           [ -n "$(ip netns exec "$CLI" dig +short +time=1 +tries=1 @$SERVER_IP vm40ic1.lab.voip)" ] &&
           sntp_answers; then
            return 0
        fi
        sleep 0.1
    done
    echo "the $1 stack did not come up" >&2
    return 1
}

start_dialtone() {
    local dir=$1 run=$2
    mkdir -p "$run/state"
    sed -e "s#@STATE@#$run/state#; s#@TREE@#$dir/tree#" "$dir/dialtone.toml" >"$run/dialtone.toml"
    ip netns exec "$SRV" $PIN_SERVER ${DIALTONE_WRAP:-} "$DIALTONE" serve --config "$run/dialtone.toml" 2>"$run/log" &
    SERVER_PID=$!
}

start_anchor() {
    local dir=$1 run=$2
    cat >"$run/dnsmasq.conf" <<EOF
# The anchor: what a user of dnsmasq writes for this site. Raised from their
# defaults so that the storm fits: dhcp-lease-max (1,000) and tftp-max (50).
# no-ping: every pool address answers here (the phones' side owns the pool),
# so dnsmasq's check before an offer would refuse them all.
interface=bsrv0
bind-interfaces
no-resolv
no-hosts
user=root
group=root
dhcp-range=10.64.1.0,10.64.31.255,255.255.192.0,1h
dhcp-lease-max=20000
dhcp-authoritative
no-ping
dhcp-leasefile=$run/leases
dhcp-option=3,$SERVER_IP
dhcp-option=6,$SERVER_IP
dhcp-option=15,lab.voip
dhcp-option=42,0.0.0.0
dhcp-option=2,ff:ff:b9:b0
# AudioCodes (and a bricked one, by its model in option 77): TFTP server,
# image and provisioning URL.
dhcp-vendorclass=set:audiocodes,450HD
dhcp-userclass=set:audiocodes,450HD
dhcp-option=tag:audiocodes,66,"$SERVER_IP"
dhcp-option=tag:audiocodes,67,"450HD_3.4.6.img"
dhcp-option=tag:audiocodes,160,"http://$SERVER_IP:8088/"
dhcp-mac=set:polycom,00:04:f2:*:*:*
dhcp-option=tag:polycom,160,"http://$SERVER_IP:8088/"
dhcp-vendorclass=set:yealink,yealink
dhcp-option=tag:yealink,66,"http://$SERVER_IP:8088/"
dhcp-vendorclass=set:cisco,Cisco Systems
dhcp-option=tag:cisco,150,$SERVER_IP
dhcp-option=tag:cisco,66,"$SERVER_IP"
dhcp-vendorclass=set:grandstream,Grandstream
dhcp-option=tag:grandstream,66,"http://$SERVER_IP:8088/"
dhcp-vendorclass=set:iss,SIP100
dhcp-option=tag:iss,66,"$SERVER_IP"
dhcp-option=tag:iss,67,"sip100.img"
dhcp-option=tag:iss,160,"http://$SERVER_IP:8088/"
# The zone: the call server pair by SRV, and their names.
host-record=vm40ic1.lab.voip,10.64.63.1
host-record=vm40ic2.lab.voip,10.64.63.2
host-record=provision.lab.voip,$SERVER_IP
srv-host=_sip._udp.lab.voip,vm40ic1.lab.voip,8060,0,0
srv-host=_sip._udp.lab.voip,vm40ic2.lab.voip,8060,0,0
srv-host=_sip._tcp.lab.voip,vm40ic1.lab.voip,8060,0,0
srv-host=_sip._tcp.lab.voip,vm40ic2.lab.voip,8060,0,0
enable-tftp
tftp-root=$dir/www
tftp-max=2000
log-facility=$run/dnsmasq.log
EOF
    cat >"$run/nginx.conf" <<EOF
# The anchor's web server: Debian's nginx as packaged, on the same tree.
user root;
worker_processes auto;
pid $run/nginx.pid;
error_log $run/nginx-error.log;
events { worker_connections 8192; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log $run/nginx-access.log;
    client_body_temp_path $run/nginx-body;
    proxy_temp_path $run/nginx-proxy;
    fastcgi_temp_path $run/nginx-fastcgi;
    uwsgi_temp_path $run/nginx-uwsgi;
    scgi_temp_path $run/nginx-scgi;
    server {
        listen $SERVER_IP:8088;
        root $dir/www;
    }
}
EOF
    cat >"$run/chrony.conf" <<EOF
# The anchor's time service: the local clock, served to the phones' subnet.
local stratum 10
allow 10.64.0.0/18
bindaddress $SERVER_IP
cmdport 0
pidfile $run/chronyd.pid
EOF
    ip netns exec "$SRV" $PIN_SERVER chronyd -d -x -f "$run/chrony.conf" >"$run/chrony.log" 2>&1 &
    ip netns exec "$SRV" $PIN_SERVER dnsmasq --keep-in-foreground --conf-file="$run/dnsmasq.conf" 2>"$run/dnsmasq.stderr" &
    SERVER_PID=$!
    ip netns exec "$SRV" $PIN_SERVER nginx -c "$run/nginx.conf" -g 'daemon off;' 2>"$run/nginx.stderr" &
}

RESULTS=$WORK/results
: >"$RESULTS"
echo "storm: sizes $SIZES, $ROUNDS rounds$PIN_NOTE"
for n in $SIZES; do
    dir=$WORK/n$n
    "$STORM" prepare "$dir" "$n"
    for round in $(seq "$ROUNDS"); do
        # Interleaved: the first stack alternates from round to round.
        if [ $((round % 2)) = 1 ]; then stacks=$STACKS; else stacks=$(echo "$STACKS" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }'); fi
        for stack in $stacks; do
            run=$WORK/run-$n-$round-$stack
            mkdir -p "$run"
            start_$stack "$dir" "$run"
            wait_ready $stack
            t0=$(ns_ticks)
            line=$(ip netns exec "$CLI" $PIN_LOAD "$STORM" run "$n" "$run/phones.csv")
            # The CPU spent just after the storm counts too: dialtone saves
            # its state files every 5 s, dnsmasq its lease file at once.
            sleep 6
            t1=$(ns_ticks)
            peak=$(ns_peak_kib)
            stop_ns
            cpu=$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", t / 100 }')
            echo "$n $round $stack $line server_cpu $cpu peak_mib $((peak / 1024))" | tee -a "$RESULTS"
        done
    done
done

echo
echo "Per N, each stack's median over the rounds (seconds; the ratio is the anchor's over dialtone's):"
awk '
{ n = $1; s = $3
  for (i = 4; i < NF; i += 2) v[n, s, $i] = v[n, s, $i] " " $(i + 1)
  ns[n] = 1 }
function med(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
    printf "%6s %-9s %7s %7s %7s %7s %8s %9s %8s %8s %9s\n", "N", "stack", "last", "p50", "p99", "failed", "retried", "dhcp_retx", "cpu_s", "peak_MiB", "tool_cpu"
    for (n in ns) for (si = 1; si <= 2; si++) {
        s = si == 1 ? "dialtone" : "anchor"
        if (v[n, s, "last"] == "") continue
        printf "%6s %-9s %7.3f %7.3f %7.3f %7s %8s %9s %8.2f %8s %9s\n", n, s, med(v[n, s, "last"]), med(v[n, s, "p50"]), med(v[n, s, "p99"]), med(v[n, s, "failed"]), med(v[n, s, "retried"]), med(v[n, s, "dhcp_retx"]), med(v[n, s, "server_cpu"]), med(v[n, s, "peak_mib"]), med(v[n, s, "tool_cpu"])
    }
    for (n in ns) if (med(v[n, "dialtone", "p99"]) > 0 && med(v[n, "anchor", "p99"]) > 0) printf "N %s: p99 %.2fx, last %.2fx, CPU %.2fx (anchor / dialtone)\n", n,
        med(v[n, "anchor", "p99"]) / med(v[n, "dialtone", "p99"]), med(v[n, "anchor", "last"]) / med(v[n, "dialtone", "last"]),
        med(v[n, "anchor", "server_cpu"]) / med(v[n, "dialtone", "server_cpu"])
}' "$RESULTS" | sort -n -k1,1 -s

if [ -d "$WORK/run-1000-$ROUNDS-dialtone" ] && [ -d "$WORK/run-1000-$ROUNDS-anchor" ]; then
    /usr/bin/python3 bench/storm_plot.py "$WORK/run-1000-$ROUNDS-dialtone/phones.csv" \
        "$WORK/run-1000-$ROUNDS-anchor/phones.csv" "$PLOT"
    echo "plot: $PLOT"
fi
