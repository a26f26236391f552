#!/usr/bin/env bash
# Files benchmark: dialtone's TFTP against dnsmasq's TFTP and tftpd-hpa, and
# dialtone's HTTP against the veth pair's raw TCP rate, one after the other
# in one run, in the same pair of network namespaces.
#
# Rows (atftp as the client, one 64 MiB image):
#   blksize 512; blksize 1468; blksize 1468 with windowsize 16 (RFC 7440;
#   servers without it answer lockstep); then 100 clients fetching a 16 MiB
#   image at once (blksize 1468), timed until the last one finishes, lockstep
#   and with windowsize 16. The same two 100-client rows again with
#   tftpload (bench/tftpload.rs) as the client: every transfer from one
#   epoll loop, so the clients' core is not what limits the row. Last, 50
#   slow tftpload clients (each acknowledgement 100 us after its block)
#   fetching 16 MiB lockstep; and 8 clients as slow as phones on a real
#   cable (each acknowledgement 500 us after its block), 16 MiB lockstep:
#   what a few phones' firmware reads cost the server's CPU.
# Each row also gives the server's CPU time per MiB sent, from the same run.
# HTTP: curl fetching the 64 MiB image, against a minimal sendfile responder
# (Python) that shows what the veth pair carries.
# Every transfer is compared byte for byte with the original.
#
# Run as root:  bash bench/files.sh            (about 14 minutes)
# Environment:  RUNS (default 3 rounds, the servers taking turns in each;
#               the best of the rounds is kept per row); for a closer look
#               at a few rows: SERVERS (e.g. "dialtone dnsmasq"), ROWS (an
#               extended regular expression; only the rows it matches run,
#               and the HTTP part is left out), e.g. ROWS='^100 clients x'.
#
# tftpd-hpa is unpacked from its Debian package into the work directory
# (never installed as a service, so nothing listens on this machine's
# interfaces). Nothing is served outside the two namespaces made here.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
. bench/lib.sh
bench_setup files 10.30.0.1/24 10.30.0.2/24 \
    atftp:atftp curl:curl dnsmasq:dnsmasq-base taskset:util-linux python3:python3

cargo build --release --quiet --example tftpload
TFTPLOAD=$PWD/target/release/examples/tftpload

TREE=$WORK/tree
mkdir -p "$TREE" "$WORK/out"
head -c $((64 << 20)) /dev/urandom >"$TREE/image64.img"
head -c $((16 << 20)) /dev/urandom >"$TREE/image16.img"

# tftpd-hpa, unpacked only.
TFTPD=
dpkg-query -W -f='${Status}' libwrap0 2>/dev/null | grep -q "install ok installed" \
    || apt-get install -y -qq --no-install-recommends libwrap0 >/dev/null 2>&1 || true
if (cd "$WORK" && apt-get download -qq tftpd-hpa >/dev/null 2>&1); then
    dpkg -x "$WORK"/tftpd-hpa_*.deb "$WORK/tftpd-hpa"
    TFTPD=$WORK/tftpd-hpa/usr/sbin/in.tftpd
fi

start_dialtone() {
    mkdir -p "$WORK/dialtone"
    cat >"$WORK/dialtone/dialtone.toml" <<T
[server]
state_dir = "$WORK/dialtone/state"
interfaces = ["bsrv0"]
[[dhcp.subnet]]
cidr = "10.30.0.0/24"
pool = ["10.30.0.100-10.30.0.200"]
[files]
root = "$TREE"
http = ["0.0.0.0:8088"]
max_transfers = 500
T
    ip netns exec "$SRV" $PIN_SERVER "$DIALTONE" serve --config "$WORK/dialtone/dialtone.toml" \
        2>"$WORK/dialtone/log" &
    SERVER_PID=$!
}

start_dnsmasq() {
    mkdir -p "$WORK/dnsmasq"
    ip netns exec "$SRV" $PIN_SERVER dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --port=0 --interface=bsrv0 --bind-interfaces --user=root --group=root \
        --enable-tftp --tftp-root="$TREE" --tftp-max=500 \
        --pid-file="$WORK/dnsmasq/pid" --log-facility="$WORK/dnsmasq/log" 2>"$WORK/dnsmasq/stderr" &
    SERVER_PID=$!
}

start_tftpd-hpa() {
    ip netns exec "$SRV" $PIN_SERVER "$TFTPD" --foreground --listen --address 10.30.0.1:69 \
        --secure --user root "$TREE" &
    SERVER_PID=$!
}

now() { date +%s.%N; }

# fetch FILE OUT OPTIONS...: one atftp read; fails if the copy differs.
fetch() {
    local file=$1 out=$2
    shift 2
    ip netns exec "$CLI" $PIN_LOAD atftp --get -r "$file" -l "$out" "$@" 10.30.0.1 >/dev/null 2>&1
    cmp -s "$out" "$TREE/$file"
}

declare -A T B
# The clients' core (core 1 when pinned): busy and total ticks so far, and
# the share busy since such a reading. A row whose clients' core is near
# 100 % busy is limited by the clients, whatever the server.
load_core() { awk -v c="cpu${PIN_LOAD##* }" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
busy_since() {
    [ -n "$PIN_LOAD" ] || { echo -; return; }
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$(load_core)"
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { if (t > 0) printf "%.0f%%", 100 * b / t; else print "-" }'
}
servers=(dialtone dnsmasq)
[ -n "$TFTPD" ] && servers+=(tftpd-hpa)
[ -n "${SERVERS:-}" ] && read -r -a servers <<<"$SERVERS"
rows=("blksize 512" "blksize 1468" "blksize 1468, window 16" "100 clients x 16 MiB" "100 clients, window 16"
    "tftpload 100 x 16 MiB" "tftpload 100, window 16" "tftpload 50 slow x 16 MiB"
    "tftpload 8 phones x 16 MiB")
if [ -n "${ROWS:-}" ]; then
    picked=()
    for row in "${rows[@]}"; do [[ $row =~ $ROWS ]] && picked+=("$row"); done
    [ ${#picked[@]} -gt 0 ] || { echo "ROWS='$ROWS' matches no row" >&2; exit 2; }
    rows=("${picked[@]}")
fi
# MiB each row sends.
declare -A MIB=(["blksize 512"]=64 ["blksize 1468"]=64 ["blksize 1468, window 16"]=64
    ["100 clients x 16 MiB"]=1600 ["100 clients, window 16"]=1600
    ["tftpload 100 x 16 MiB"]=1600 ["tftpload 100, window 16"]=1600 ["tftpload 50 slow x 16 MiB"]=800
    ["tftpload 8 phones x 16 MiB"]=128)
declare -A C

# Rounds: in each, every server in turn runs every row once, so a slow
# spell of the machine (this VM's speed drifts by up to 2x for minutes)
# falls on every server alike; the best of the rounds is kept per row.
for round in $(seq 1 "$RUNS"); do
    for server in "${servers[@]}"; do
        echo "== round $round: $server"
        "start_$server"
        for _ in $(seq 1 50); do
            fetch image16.img "$WORK/out/probe" && break
            sleep 0.1
        done
        for row in "${rows[@]}"; do
            rm -f "$WORK"/out/*
            t0=$(now)
            c0=$(load_core)
            s0=$(cpu_ticks)
            case $row in
                "blksize 512") fetch image64.img "$WORK/out/a" || { echo "  $row: copy differs"; continue; } ;;
                "blksize 1468") fetch image64.img "$WORK/out/a" --option "blksize 1468" || { echo "  $row: copy differs"; continue; } ;;
                "blksize 1468, window 16")
                    fetch image64.img "$WORK/out/a" --option "blksize 1468" --option "windowsize 16" \
                        || { echo "  $row: copy differs"; continue; } ;;
                "tftpload 8 phones"*)
                    ip netns exec "$CLI" $PIN_LOAD "$TFTPLOAD" 10.30.0.1 image16.img 8 1468 1 \
                        $((16 << 20)) 500 >/dev/null || { echo "  $row: transfers failed"; continue; }
                    ;;
                "tftpload 50 slow"*)
                    ip netns exec "$CLI" $PIN_LOAD "$TFTPLOAD" 10.30.0.1 image16.img 50 1468 1 \
                        $((16 << 20)) 100 >/dev/null || { echo "  $row: transfers failed"; continue; }
                    ;;
                "tftpload"*)
                    win=1
                    [ "$row" = "tftpload 100, window 16" ] && win=16
                    ip netns exec "$CLI" $PIN_LOAD "$TFTPLOAD" 10.30.0.1 image16.img 100 1468 $win \
                        $((16 << 20)) >/dev/null || { echo "  $row: transfers failed"; continue; }
                    ;;
                "100 clients"*)
                    win=()
                    [ "$row" = "100 clients, window 16" ] && win=(--option "windowsize 16")
                    pids=()
                    for i in $(seq 1 100); do
                        fetch image16.img "$WORK/out/m$i" --option "blksize 1468" "${win[@]}" &
                        pids+=($!)
                    done
                    failed=0
                    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
                    [ "$failed" = 0 ] || { echo "  $row: $failed copies failed or differ"; continue; }
                    ;;
            esac
            t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
            busy=$(busy_since "$c0")
            cpu=$(awk -v d=$(($(cpu_ticks) - s0)) -v hz="$(getconf CLK_TCK)" -v m="${MIB[$row]}" \
                'BEGIN { printf "%.1f", 1000 * d / hz / m }')
            best=${T["$server|$row"]:-}
            if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then
                T["$server|$row"]=$t
                B["$server|$row"]=$busy
                C["$server|$row"]=$cpu
            fi
            printf "  %-26s %8s s   server CPU %6s ms/MiB   (clients' core %s busy)\n" "$row" "$t" "$cpu" "$busy"
        done
        stop_server
    done
done

http_best= raw_best=
if [ -z "${ROWS:-}" ]; then
echo "== HTTP (64 MiB, curl)"
# Both servers are timed by the same client, curl, discarding the body
# (`-o /dev/null`), so the figure is the server and the pair, not the
# client's disk; each server's copy is then checked once with cmp.
# The pair's rate is shown by a minimal HTTP responder (Python, sendfile):
# a 200 header, then the file, with nothing between the page cache and the
# socket.
cat >"$WORK/raw.py" <<'PY'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.30.0.1", 9000)); s.listen(8)
size = os.stat(path).st_size
while True:
    c, _ = s.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        k = c.recv(4096)
        if not k: break
        req += k
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
    with open(path, "rb") as f:
        off = 0
        while off < size:
            off += os.sendfile(c.fileno(), f.fileno(), off, size - off)
    c.close()
PY
# http_time URL: best of RUNS, in seconds; empty when the copy differs.
http_time() {
    local url=$1 best= secs
    for _ in $(seq 1 50); do
        ip netns exec "$CLI" curl -sf -o /dev/null "$url" && break
        sleep 0.1
    done
    rm -f "$WORK/out/h"
    ip netns exec "$CLI" curl -sf -o "$WORK/out/h" "$url"
    cmp -s "$WORK/out/h" "$TREE/image64.img" || { echo "  HTTP copy from $url differs" >&2; return; }
    # Eight fetches on one connection per run (64 MiB alone takes a few
    # milliseconds, too short to time well); seconds per fetch.
    local args=()
    for _ in 1 2 3 4 5 6 7 8; do args+=(-o /dev/null "$url"); done
    for _ in $(seq 1 "$RUNS"); do
        secs=$(ip netns exec "$CLI" $PIN_LOAD curl -sf -w '%{time_total}\n' "${args[@]}" \
            | awk '{ s += $1 } END { printf "%.4f", s / NR }')
        if [ -z "$best" ] || awk -v t="$secs" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$secs; fi
    done
    echo "$best"
}
start_dialtone
http_best=$(http_time http://10.30.0.1:8088/image64.img)
stop_server
ip netns exec "$SRV" $PIN_SERVER python3 "$WORK/raw.py" "$TREE/image64.img" &
SERVER_PID=$!
raw_best=$(http_time http://10.30.0.1:9000/image64.img)
stop_server
mbps() { awk -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", 64 / s * 8.388608; else print "-" }'; }
printf '  dialtone HTTP   %8s s  (%s Mbit/s)\n' "${http_best:-fail}" "$(mbps "${http_best:-0}")"
printf '  sendfile (veth) %8s s  (%s Mbit/s)\n' "${raw_best:-fail}" "$(mbps "${raw_best:-0}")"
fi

# table NAME: one row per bench row, a column per server, then the ratio
# of each anchor's figure to dialtone's, from the associative array NAME.
table() {
    local -n fig=$1
    printf '  %-26s' "row"
    for s in "${servers[@]}"; do printf ' %10s' "$s"; done
    for s in "${servers[@]:1}"; do printf ' %12s' "vs $s"; done
    echo
    for row in "${rows[@]}"; do
        printf '  %-26s' "$row"
        for s in "${servers[@]}"; do printf ' %10s' "${fig[$s|$row]:-fail}"; done
        for s in "${servers[@]:1}"; do
            awk -v a="${fig[dialtone|$row]:-0}" -v b="${fig[$s|$row]:-0}" \
                'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf " %11.2fx", b / a; else printf " %12s", "-" }'
        done
        echo
    done
}
echo
echo "== results (seconds, best of $RUNS; atftp client unless the row says tftpload${PIN_NOTE}; ratio = anchor time / dialtone time)"
table T
echo
echo "== server CPU per MiB sent (ms, from the round kept above; ratio = anchor / dialtone: above 1, dialtone spends less)"
table C
awk -v h="${http_best:-0}" -v r="${raw_best:-0}" \
    'BEGIN { if (h > 0 && r > 0) printf "  HTTP: dialtone at %.0f%% of the rate of a sendfile responder on the veth pair\n", 100 * r / h }'
