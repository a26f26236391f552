#!/bin/bash
# One lockstep TFTP read, alone on the link: dialtone against the floor of
# the link (bench/tftpfloor.rs, a minimal server waiting for each ACK with a
# blocking receive, and one spinning on it) and against dnsmasq, tftpd-hpa
# and atftpd. One client (atftp from Debian, as a lab host would fetch)
# fetches a 64 MiB image with blksize 512 and 1468, in interleaved rounds: in each, every
# server serves each row once. Per row and server: the best and the median
# time, the server's CPU per MiB, and dialtone against the floor (the faster
# prototype) and against the best of the three anchors.
#
# Run as root:  bash bench/lockstep.sh   (about 3 minutes)
# Environment:  ROUNDS (default 5), SERVERS (default: all that are there)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
. bench/lib.sh
bench_setup lockstep 10.31.0.1/24 10.31.0.2/24 dnsmasq:dnsmasq-base atftp:atftp taskset:util-linux

cargo build --release --quiet --example tftpfloor
FLOOR=$PWD/target/release/examples/tftpfloor
TREE=$WORK/tree
mkdir -p "$TREE"
head -c $((64 << 20)) /dev/urandom >"$TREE/image64.img"
echo up >"$TREE/ready.txt"

# tftpd-hpa and atftpd, unpacked from their Debian packages (never
# installed as services).
dpkg-query -W -f='${Status}' libwrap0 2>/dev/null | grep -q "install ok installed" \
    || apt-get install -y -qq --no-install-recommends libwrap0 >/dev/null 2>&1 || true
servers=(floor-block floor-spin dialtone dnsmasq)
for pkg in tftpd-hpa atftpd; do
    if (cd "$WORK" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
        dpkg -x "$WORK"/${pkg}_*.deb "$WORK/$pkg"
        servers+=("$pkg")
    else
        echo "($pkg: cannot download its package; left out)"
    fi
done

[ -n "${SERVERS:-}" ] && read -r -a servers <<<"$SERVERS"

start_floor-block() { ip netns exec "$SRV" $PIN_SERVER "$FLOOR" 10.31.0.1 "$TREE" block & SERVER_PID=$!; }
start_floor-spin() { ip netns exec "$SRV" $PIN_SERVER "$FLOOR" 10.31.0.1 "$TREE" spin & SERVER_PID=$!; }
start_dialtone() {
    mkdir -p "$WORK/dialtone"
    cat >"$WORK/dialtone/dialtone.toml" <<T
[server]
state_dir = "$WORK/dialtone/state"
interfaces = ["bsrv0"]
[[dhcp.subnet]]
cidr = "10.31.0.0/24"
pool = ["10.31.0.100-10.31.0.200"]
[files]
root = "$TREE"
T
    ip netns exec "$SRV" $PIN_SERVER "$DIALTONE" serve --config "$WORK/dialtone/dialtone.toml" \
        2>"$WORK/dialtone/log" &
    SERVER_PID=$!
}
start_dnsmasq() {
    mkdir -p "$WORK/dnsmasq"
    ip netns exec "$SRV" $PIN_SERVER dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --port=0 --interface=bsrv0 --bind-interfaces --user=root --group=root \
        --enable-tftp --tftp-root="$TREE" --pid-file="$WORK/dnsmasq/pid" \
        --log-facility="$WORK/dnsmasq/log" 2>"$WORK/dnsmasq/stderr" &
    SERVER_PID=$!
}
start_tftpd-hpa() {
    ip netns exec "$SRV" $PIN_SERVER "$WORK/tftpd-hpa/usr/sbin/in.tftpd" --foreground --listen \
        --address 10.31.0.1:69 --secure --user root "$TREE" &
    SERVER_PID=$!
}
start_atftpd() {
    ip netns exec "$SRV" $PIN_SERVER "$WORK/atftpd/usr/sbin/atftpd" --daemon --no-fork \
        --user root.root --bind-address 10.31.0.1 --logfile "$WORK/atftpd.log" "$TREE" &
    SERVER_PID=$!
}

# Waits until a one-block read answers (the server is up).
ready() {
    local i
    for i in $(seq 100); do
        ip netns exec "$CLI" timeout 2 atftp --get -r ready.txt -l "$WORK/ready.out" 10.31.0.1 >/dev/null 2>&1 \
            && cmp -s "$WORK/ready.out" "$TREE/ready.txt" && return 0
        sleep 0.1
    done
    return 1
}

rows=(512 1468)
declare -A TIMES CPUS
echo "lockstep: 64 MiB, one client, $ROUNDS rounds$PIN_NOTE"
for round in $(seq "$ROUNDS"); do
    for server in "${servers[@]}"; do
        "start_$server"
        if ! ready; then echo "  $server did not answer"; stop_server; continue; fi
        for blk in "${rows[@]}"; do
            rm -f "$WORK/copy"
            opt=()
            [ "$blk" = 512 ] || opt=(--option "blksize $blk")
            c0=$(cpu_ticks)
            s0=$(date +%s.%N)
            ip netns exec "$CLI" $PIN_LOAD atftp --get -r image64.img -l "$WORK/copy" "${opt[@]}" 10.31.0.1 >/dev/null 2>&1 \
                && cmp -s "$WORK/copy" "$TREE/image64.img" || { echo "  $server blksize $blk: failed"; continue; }
            t=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
            cpu=$(awk -v d=$(($(cpu_ticks) - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", 1000 * d / hz / 64 }')
            TIMES["$server|$blk"]+=" $t"
            CPUS["$server|$blk"]+=" $cpu"
            printf '  round %d  %-12s blksize %-5s %7.3f s   server CPU %6s ms/MiB\n' "$round" "$server" "$blk" "$t" "$cpu"
        done
        stop_server
    done
done

stat() { # stat "values" best|median
    echo "$1" | tr ' ' '\n' | grep -v '^$' | sort -g | awk -v w="$2" '{ v[NR] = $1 } END {
        if (w == "best") print v[1]; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
echo
for blk in "${rows[@]}"; do
    echo "blksize $blk (seconds for 64 MiB; CPU: the server's, ms per MiB, median):"
    for server in "${servers[@]}"; do
        [ -n "${TIMES["$server|$blk"]:-}" ] || continue
        printf '  %-12s best %7.3f   median %7.3f   CPU %6s\n' "$server" \
            "$(stat "${TIMES["$server|$blk"]}" best)" "$(stat "${TIMES["$server|$blk"]}" median)" \
            "$(stat "${CPUS["$server|$blk"]}" median)"
    done
    floor=$(for s in floor-block floor-spin; do stat "${TIMES["$s|$blk"]:-999}" median; done | sort -g | head -1)
    anchor=$(for s in dnsmasq tftpd-hpa atftpd; do
        if [ -n "${TIMES["$s|$blk"]:-}" ]; then stat "${TIMES["$s|$blk"]}" median; fi
    done | sort -g | head -1)
    [ -n "${TIMES["dialtone|$blk"]:-}" ] && [ -n "$anchor" ] || continue
    d=$(stat "${TIMES["dialtone|$blk"]}" median)
    awk -v d="$d" -v f="$floor" -v a="$anchor" 'BEGIN {
        printf "  dialtone (median): %.1f %% over the floor (goal: within 10 %%), %.2fx the best anchor (goal: at least 1x)\n", 100 * (d - f) / f, a / d }'
done
