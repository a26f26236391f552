#!/bin/bash
# images/boot-test.sh: build the appliance image, boot it under qemu and check it end to end.
#
#   bash images/boot-test.sh                       # builds with `cargo deb` (see build.sh)
#   DEB=/path/to/dialtone_X_amd64.deb bash images/boot-test.sh
#   BUILD=0 bash images/boot-test.sh               # test target/images/dialtone.qcow2 as it is
#
# What it does, all of it inside a network namespace made for the run (dt-img-PID) so nothing
# touches this machine's interfaces: qemu (TCG; UEFI with OVMF; a throwaway qcow2 overlay, 4 GiB
# so the first-boot root growth is exercised) with its NIC on a tap device in the namespace.
# The appliance is configured the two keyboard-less ways:
#   * SMBIOS type 11 system credentials: dialtone.toml (serving eth0), network.eth0.network
#     (static 10.99.0.1/24), authorized_keys (a key made for the run), and a phones.toml that
#     must be refused (its reason must reach the journal and the console);
#   * a second disk, a FAT file system labelled DIALTONE: files/ (copied into /srv/dialtone), and
#     a dialtone.toml that must be refused, with import-report.txt written back onto it.
# The namespace's side of the tap is 10.99.0.2/24: DHCP (udhcpc), DNS (dig), TFTP (tftp-hpa),
# HTTP (curl) and SSH come from there.  Checks that need the real dialtone (DHCP, DNS, TFTP,
# HTTP, RSS, leases) are skipped, and said to be, when the package is the prototype fake.
#
# Prints: build time (and whether the base came from the cache), image sizes, time from qemu
# start to the login prompt / SSH / first DHCP lease, dialtone's RSS, and "N passed, N failed".
# Everything is torn down on exit, failure or not (KEEP=1 keeps target/images/boot-test/).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
OUT=${OUT:-$REPO/target/images}
T=$OUT/boot-test
NS=dt-img-$$
TAP=dtimg0
GUEST=10.99.0.1
NSADDR=10.99.0.2
MAC=52:54:00:d1:a1:01
MEM=${MEM:-1536}
SMP=${SMP:-2}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}     # seconds for one boot to reach SSH, under TCG
QEMU_TIMEOUT=${QEMU_TIMEOUT:-2400}    # hard limit for the whole VM run
export OUT

PASSED=0 FAILED=0 SKIPPED=0
QEMU_PID= DHCP_PID=
declare -a RESULTS=() MEASURES=()

log() { echo "boot-test: $*"; }
pass() { PASSED=$((PASSED+1)); RESULTS+=("PASS  $*"); log "PASS  $*"; }
failc() { FAILED=$((FAILED+1)); RESULTS+=("FAIL  $*"); log "FAIL  $*"; }
skip() { SKIPPED=$((SKIPPED+1)); RESULTS+=("SKIP  $*"); log "SKIP  $*"; }
measure() { MEASURES+=("$(printf '%-40s %s' "$1" "$2")"); log "measure: $1: $2"; }
# check NAME CMD...: run CMD, PASS or FAIL (never aborts the run)
check() { local name=$1; shift; if "$@" >>"$T/checks.log" 2>&1; then pass "$name"; else failc "$name"; fi; }
# eventually SECS NAME CMD...: CMD passes within SECS seconds (polled every 2 s), for what a
# service does a moment after the event the test waits on
eventually() {
    local secs=$1 name=$2 t0; shift 2; t0=$(date +%s)
    until "$@" >>"$T/checks.log" 2>&1; do
        if [ $(( $(date +%s) - t0 )) -ge "$secs" ]; then failc "$name (not within ${secs} s)"; return; fi
        sleep 2
    done
    pass "$name"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# fatal: print the tail of the serial console, then clean up (trap)
die() {
    log "FATAL: $*"
    [ -f "$T/serial.log" ] && { echo "----- last 40 lines of the serial console ($T/serial.log) -----"; tail -40 "$T/serial.log" | tr -d '\r'; echo "-----"; }
    summary
    exit 1
}

cleanup() {
    set +e
    [ -n "$DHCP_PID" ] && kill "$DHCP_PID" 2>/dev/null
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null; sleep 1; kill -9 "$QEMU_PID" 2>/dev/null
    fi
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null   # anything left in our namespace
    ip netns del "$NS" 2>/dev/null
    [ "${KEEP:-0}" = 1 ] || rm -f "$T/overlay.qcow2" "$T/vars.fd"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

summary() {
    echo
    echo "==================== boot test summary ===================="
    printf '  %s\n' "${MEASURES[@]}"
    echo
    printf '  %s\n' "${RESULTS[@]}"
    echo
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
}

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, tap devices, build.sh)"
rm -rf "$T"; mkdir -p "$T"

# ---------------------------------------------------------------------------------------------
# tools (Debian packages, installed when missing)
# ---------------------------------------------------------------------------------------------
declare -A TOOL_PKG=([qemu-system-x86_64]=qemu-system-x86 [udhcpc]=udhcpc [dig]=bind9-dnsutils
    [tftp]=tftp-hpa [curl]=curl [ssh]=openssh-client [mcopy]=mtools [mkfs.vfat]=dosfstools)
missing=()
for t in "${!TOOL_PKG[@]}"; do command -v "$t" >/dev/null || missing+=("${TOOL_PKG[$t]}"); done
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] || missing+=(ovmf)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$T/apt.log" 2>&1; then
        # a qemu-utils from backports (newer than the release's) blocks qemu-system-x86:
        # take the release's qemu-utils along with it
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades "${missing[@]}" \
            "qemu-utils/$codename" >>"$T/apt.log" 2>&1 || { tail "$T/apt.log"; die "could not install ${missing[*]}"; }
    fi
fi
if [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ]; then OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
else OVMF_CODE=/usr/share/OVMF/OVMF_CODE.fd OVMF_VARS=/usr/share/OVMF/OVMF_VARS.fd; fi
# TCG unless the CPU really offers hardware virtualisation (a paravirtual /dev/kvm without
# vmx/svm hangs stock Debian kernels)
ACCEL=tcg
if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -w /dev/kvm ] && [ "${NO_KVM:-0}" != 1 ]; then ACCEL=kvm; fi

# ---------------------------------------------------------------------------------------------
# 1. build
# ---------------------------------------------------------------------------------------------
if [ "${BUILD:-1}" = 1 ]; then
    t0=$(now)
    bash "$HERE/build.sh" 2>&1 | tee "$T/build.log" || die "build.sh failed (see above)"
    [ "${PIPESTATUS[0]}" = 0 ] || die "build.sh failed (see above)"
    if grep -q 'base root file system: cached' "$T/build.log"; then kind="cached base"; else kind="cold: mmdebstrap ran"; fi
    measure "build time ($kind)" "$(since "$t0") s"
fi
IMG=$OUT/dialtone.qcow2
[ -f "$IMG" ] || die "$IMG missing (run images/build.sh)"
measure "dialtone.qcow2" "$(( $(stat -c %s "$IMG") / 1048576 )) MiB"
[ -f "$OUT/dialtone.raw.zst" ] && measure "dialtone.raw.zst" "$(( $(stat -c %s "$OUT/dialtone.raw.zst") / 1048576 )) MiB"
REAL=1
grep -q '^dialtone:.*fake' "$OUT/dialtone.build-info" 2>/dev/null && REAL=0
DEB_USED=$OUT/dialtone.deb   # the package in the image (build.sh keeps it); the upgrade starts from it
[ $REAL = 1 ] || log "the image holds the FAKE prototype dialtone: checks needing the real one are skipped"

# ---------------------------------------------------------------------------------------------
# 2. the configuration handed to the appliance
# ---------------------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C dialtone-boot-test -f "$T/id" >/dev/null
cat >"$T/dialtone.toml" <<'EOF'
# boot-test configuration: serve the lab network on eth0
[server]
state_dir = "/var/lib/dialtone"
interfaces = ["eth0"]

[dhcp]
lease_time = "1h"

[[dhcp.subnet]]
cidr = "10.99.0.0/24"
pool = ["10.99.0.100-10.99.0.150"]
router = "10.99.0.1"
dns = ["self"]
domain = "lab.voip"
options.ntp_servers = ["self"]
options.tftp_server = "self"

[dns]
zone = "lab.voip"

[[dns.host]]
name = "pbx1"
ip = "10.99.0.10"

[[dns.switchover]]
name = "cic"
members = ["pbx1"]
mode = "equal"
services = [{ srv = "_sip._udp", port = 5060 }]

[time]
serve = true

[files]
root = "/srv/dialtone"
tftp = true
http = ["0.0.0.0:80"]
EOF
cat >"$T/eth0.network" <<EOF
[Match]
Name=eth0

[Network]
Address=$GUEST/24
LinkLocalAddressing=no
EOF
printf '# must be refused by dialtone check\nINVALID = [\n' >"$T/bad-phones.toml"
printf '# must be refused by dialtone check\nINVALID = [ this is not toml\n' >"$T/bad-dialtone.toml"

# the DIALTONE medium: a small FAT disk image, made without mounting anything
head -c 307201 /dev/urandom >"$T/firmware.bin"      # odd size: a TFTP last block that is not full
printf 'hello from the DIALTONE medium\n' >"$T/hello.cfg"
truncate -s 32M "$T/medium.img"
mkfs.vfat -n DIALTONE "$T/medium.img" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$T/medium.img" ::files ::files/firmware
mcopy -i "$T/medium.img" "$T/firmware.bin" ::files/firmware/test.bin
mcopy -i "$T/medium.img" "$T/hello.cfg" ::files/hello.cfg
mcopy -i "$T/medium.img" "$T/bad-dialtone.toml" ::dialtone.toml

# a second medium, plugged in later as a USB stick (the mini PC way): a new file for the tree
printf 'plugged in after boot\n' >"$T/hotplug.cfg"
truncate -s 16M "$T/stick.img"
mkfs.vfat -n DIALTONE "$T/stick.img" >/dev/null
mmd -i "$T/stick.img" ::files
mcopy -i "$T/stick.img" "$T/hotplug.cfg" ::files/hotplug.cfg

# SMBIOS type 11 strings: io.systemd.credential.binary:NAME=BASE64 (binary form: no escaping
# of "," or newlines needed on qemu's command line)
cred() { printf 'type=11,value=io.systemd.credential.binary:%s=%s' "$1" "$(base64 -w0 "$2")"; }
SMBIOS=(-smbios "$(cred dialtone.toml "$T/dialtone.toml")"
        -smbios "$(cred network.eth0.network "$T/eth0.network")"
        -smbios "$(cred authorized_keys "$T/id.pub")"
        -smbios "$(cred phones.toml "$T/bad-phones.toml")")

# ---------------------------------------------------------------------------------------------
# 3. network namespace + tap, qemu
# ---------------------------------------------------------------------------------------------
ip netns add "$NS" || die "ip netns add $NS failed"
ip -n "$NS" link set lo up
ip netns exec "$NS" ip tuntap add dev "$TAP" mode tap || die "no tap device in the namespace"
ip -n "$NS" addr add "$NSADDR/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up
TAP_MAC=$(ip -n "$NS" -o link show "$TAP" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)   # the DHCP client's MAC
in_ns() { ip netns exec "$NS" "$@"; }
SSH=(ip netns exec "$NS" ssh -i "$T/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
     -o ConnectTimeout=5 -o BatchMode=yes "root@$GUEST")
gssh() { timeout 60 "${SSH[@]}" "$@"; }

qemu-img create -q -f qcow2 -b "$IMG" -F qcow2 "$T/overlay.qcow2" 4G
cp "$OVMF_VARS" "$T/vars.fd"
log "starting qemu ($ACCEL, ${MEM} MiB, $SMP CPUs); serial console: $T/serial.log"
T_QEMU=$(now)
in_ns timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -machine q35 -m "$MEM" -smp "$SMP" \
    -drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" \
    -drive if=pflash,format=raw,file="$T/vars.fd" \
    -drive file="$T/overlay.qcow2",if=virtio,format=qcow2 \
    -drive file="$T/medium.img",if=virtio,format=raw \
    -netdev tap,id=n0,ifname="$TAP",script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac="$MAC",romfile= \
    "${SMBIOS[@]}" \
    -device qemu-xhci,id=xhci \
    -display none -monitor unix:"$T/monitor.sock",server=on,wait=off -serial file:"$T/serial.log" \
    >"$T/qemu.log" 2>&1 &
QEMU_PID=$!

# DHCP from the namespace side from the first second on: the time to the first lease measures
# the whole boot up to dialtone answering.  udhcpc's script only records what it was given.
cat >"$T/udhcpc.script" <<EOF
#!/bin/sh
[ "\$1" = bound ] || exit 0
env | grep -E '^(ip|subnet|router|dns|domain|serverid|lease|ntpsrv|tftp|bootfile|opt[0-9]+)=' | sort >"$T/lease.env"
EOF
chmod 755 "$T/udhcpc.script"
dhcp_once() {   # one DHCP exchange, options recorded in $T/lease.env
    rm -f "$T/lease.env"
    in_ns timeout 20 udhcpc -i "$TAP" -f -q -n -t 3 -T 2 -s "$T/udhcpc.script" -O ntpsrv -O tftp \
        -x hostname:boottest >>"$T/udhcpc.log" 2>&1 && [ -s "$T/lease.env" ]
}
if [ $REAL = 1 ]; then
    ( while kill -0 "$QEMU_PID" 2>/dev/null; do
          if dhcp_once; then awk -v a="$T_QEMU" -v b="$(now)" 'BEGIN { printf "%.1f\n", b - a }' >"$T/first-lease"; exit 0; fi
          sleep 1
      done ) & DHCP_PID=$!
fi

# wait_for WHAT TIMEOUT CMD...: poll CMD every 2 s
wait_for() {
    local what=$1 limit=$2 t0; shift 2; t0=$(now)
    while ! "$@" >/dev/null 2>&1; do
        kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited while waiting for $what ($(tail -3 "$T/qemu.log"))"
        [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a > '"$limit"') }')" = 0 ] || die "timed out after ${limit}s waiting for $what"
        sleep 2
    done
}
# (grep reads the file itself: in a pipeline under pipefail, grep -q's early exit would make
# the writer die of SIGPIPE and the pipeline fail on a match found early)
serial_has() { grep -aqF -- "$1" "$T/serial.log"; }

wait_for "the login prompt on the serial console" "$BOOT_TIMEOUT" serial_has 'dialtone login:'
measure "qemu start -> serial login prompt" "$(since "$T_QEMU") s"
wait_for "SSH on $GUEST" 120 gssh true
measure "qemu start -> SSH" "$(since "$T_QEMU") s"
# sshd can be up before dialtone (it waits for the network): the checks below
# look at a started system, so wait for dialtone (a failure to start shows
# as a timeout here, with the serial console)
wait_for "dialtone.service to start" 180 gssh "systemctl is-active -q dialtone.service || systemctl is-failed -q dialtone.service"

# ---------------------------------------------------------------------------------------------
# 4. checks, first boot
# ---------------------------------------------------------------------------------------------
check "boot: UEFI + systemd-boot + serial console" serial_has 'Debian GNU/Linux 12'
eventually 60 "console shows addresses and dialtone state (issue)" serial_has "dialtone: "
check "network: eth0 has $GUEST/24 from the network.eth0.network credential" \
    gssh "ip -4 -o addr show dev eth0 | grep -q ' $GUEST/24 '"
check "ssh: root login with the authorized_keys credential" gssh "test \"\$(id -u)\" = 0"
check "ssh: password logins off (sshd -T)" gssh "sshd -T | grep -qx 'passwordauthentication no' && sshd -T | grep -qx 'kbdinteractiveauthentication no'"
check "root account locked (no password)" gssh "test \"\$(getent shadow root | cut -d: -f2)\" = '*'"
check "ssh host keys made on this boot (not from the image)" gssh "ls /etc/ssh/ssh_host_ed25519_key"
check "systemd 252 imported the SMBIOS credentials" gssh "systemd-creds --system list --no-legend | grep -q '^dialtone.toml'"
gssh "cat /etc/dialtone/dialtone.toml" >"$T/guest-dialtone.toml" 2>/dev/null || true
check "import: dialtone.toml from the credential installed (byte-exact)" cmp "$T/dialtone.toml" "$T/guest-dialtone.toml"
check "import: bad phones.toml credential refused, reason in the journal" \
    gssh "journalctl -b -u dialtone-import -o cat | grep -q 'REFUSED.*phones.toml'"
check "import: refusal shown on the console" serial_has 'dialtone-import: REFUSED'
check "import: no phones.toml installed" gssh "! test -e /etc/dialtone/phones.toml"
check "import: bad dialtone.toml on the DIALTONE medium refused (credential's stays)" \
    gssh "journalctl -b -u dialtone-import -o cat | grep -q 'REFUSED dialtone.toml.*from medium' && cmp -s /etc/dialtone/dialtone.toml <(systemd-creds --system cat dialtone.toml)"
check "import: medium files/ copied into /srv/dialtone" \
    gssh "test \"\$(sha256sum </srv/dialtone/firmware/test.bin)\" = '$(sha256sum <"$T/firmware.bin")'"
check "dialtone.service active" gssh "systemctl is-active -q dialtone.service"
check "status page: /health answers ok on loopback port 8080" \
    gssh "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3 | tr -d '\\r' | grep -qx ok"
check "dialtone runs as _dialtone" \
    gssh "pid=\$(systemctl show -p MainPID --value dialtone); test \"\$pid\" != 0 && test \"\$(stat -c %U /proc/\$pid)\" = _dialtone"
check "root file system grown to the 4 GiB disk (systemd-repart + growfs)" \
    gssh "test \"\$(df -BM --output=size / | tail -1 | tr -dc 0-9)\" -gt 3000"
check "ESP mounted at /boot/efi, bootctl sees systemd-boot" gssh "bootctl is-installed"
# the systemd 252 credential facts this image relies on, proved on the booted system:
check "systemd 252: LoadCredential=NAME (no path) hands a service the system credential" \
    gssh "cmp -s /etc/dialtone/dialtone.toml <(systemd-run --quiet --wait --pipe -p LoadCredential=dialtone.toml sh -c 'cat \"\$CREDENTIALS_DIRECTORY/dialtone.toml\"')"
check "systemd 252: ImportCredential= is unknown (it came in 254)" \
    gssh "printf '[Service]\nExecStart=/bin/true\nImportCredential=dialtone.*\n' >/run/dt-probe.service; systemd-analyze verify /run/dt-probe.service 2>&1 | grep -q \"Unknown key.*ImportCredential\""
gssh "systemd --version | head -1; uname -r; df -h / /boot/efi; systemctl --failed --no-legend" >"$T/guest-info.txt" 2>&1 || true
check "no failed units" gssh "test -z \"\$(systemctl --failed --no-legend)\""

if [ $REAL = 1 ]; then
    # wait for the DHCP loop's first lease
    for _ in $(seq 1 60); do [ -s "$T/first-lease" ] && break; sleep 2; done
    if [ -s "$T/first-lease" ]; then
        measure "qemu start -> first DHCP lease" "$(cat "$T/first-lease") s"
        pass "dhcp: lease from dialtone"
        cp "$T/lease.env" "$T/lease-1.env"
        check "dhcp: address from the pool, router, dns=self, domain" \
            sh -c "grep -q '^ip=10.99.0.1[0-5][0-9]\$' '$T/lease-1.env' && grep -qx 'router=$GUEST' '$T/lease-1.env' && grep -qx 'dns=$GUEST' '$T/lease-1.env' && grep -qx 'domain=lab.voip' '$T/lease-1.env' && grep -qx 'serverid=$GUEST' '$T/lease-1.env'"
        check "dhcp: option 42 (ntp) and 66 (tftp) = self" \
            sh -c "grep -qx 'ntpsrv=$GUEST' '$T/lease-1.env' && grep -qx 'tftp=$GUEST' '$T/lease-1.env'"
    else
        failc "dhcp: no lease from dialtone within the boot"
    fi
    check "dns: SRV _sip._udp.lab.voip answers pbx1:5060" \
        sh -c "ip netns exec $NS dig +short +time=2 +tries=2 @$GUEST SRV _sip._udp.lab.voip | grep -q '5060 pbx1.lab.voip.'"
    check "dns: A pbx1.lab.voip" sh -c "ip netns exec $NS dig +short +time=2 @$GUEST A pbx1.lab.voip | grep -qx 10.99.0.10"
    rm -f "$T/tftp.bin" "$T/http.bin"
    ( cd "$T" && in_ns timeout 60 tftp -m binary "$GUEST" -c get firmware/test.bin tftp.bin ) >>"$T/checks.log" 2>&1 || true
    check "tftp: firmware/test.bin byte-exact" cmp "$T/firmware.bin" "$T/tftp.bin"
    in_ns timeout 60 curl -sf -o "$T/http.bin" "http://$GUEST/firmware/test.bin" >>"$T/checks.log" 2>&1 || true
    check "http: firmware/test.bin byte-exact" cmp "$T/firmware.bin" "$T/http.bin"
    rss=$(gssh "grep VmRSS /proc/\$(systemctl show -p MainPID --value dialtone)/status" 2>/dev/null | awk '{print $2, $3}')
    measure "dialtone RSS while serving" "${rss:-?}"
    gssh "dialtone leases --config /etc/dialtone/dialtone.toml" >"$T/leases-1.txt" 2>&1 || true
    check "leases: the namespace's lease ($TAP_MAC) is in dialtone's table" grep -qi "^$TAP_MAC .*bound" "$T/leases-1.txt"
    check "service: STATUS= says what is served" \
        gssh "systemctl show -p StatusText --value dialtone | grep -q '^DHCP on eth0; [0-9]* leases\\?; DNS lab.voip; SNTP; TFTP, HTTP :80'"

    # -- reload: a changed option is in the next DHCP answer; a broken file is refused --------
    gssh "sed -i 's/^domain = \"lab.voip\"/domain = \"site2.voip\"/' /etc/dialtone/dialtone.toml" >>"$T/checks.log" 2>&1 || true
    check "reload: systemctl reload dialtone succeeds" gssh "systemctl reload dialtone"
    if dhcp_once; then
        check "reload: the next DHCP answer carries the changed option (domain site2.voip)" grep -qx 'domain=site2.voip' "$T/lease.env"
    else
        failc "reload: no DHCP answer after the reload"
    fi
    gssh "cp /etc/dialtone/dialtone.toml /root/good.toml && sed -i 's/^lease_time = /leese_time = /' /etc/dialtone/dialtone.toml" >>"$T/checks.log" 2>&1 || true
    check "reload: a broken file makes systemctl reload fail" gssh "! systemctl reload dialtone"
    check "reload: ... with file, line and key in the journal" \
        gssh "journalctl -u dialtone -o cat --since -2min | grep -q 'dialtone.toml:[0-9]*:[0-9]*: dhcp.leese_time: unknown field'"
    check "reload: ... and the service still active" gssh "systemctl is-active -q dialtone"
    if dhcp_once; then
        check "reload: ... and the running configuration still answers" grep -qx 'domain=site2.voip' "$T/lease.env"
    else
        failc "reload: no DHCP answer after the refused reload"
    fi
    gssh "cp /root/good.toml /etc/dialtone/dialtone.toml" >>"$T/checks.log" 2>&1 || true

    # -- watchdog: a hung dialtone (SIGSTOP) is killed and restarted by systemd ---------------
    pid1=$(gssh "systemctl show -p MainPID --value dialtone" 2>/dev/null)
    T_HANG=$(now)
    gssh "kill -STOP $pid1" >>"$T/checks.log" 2>&1 || true
    ok=0
    for _ in $(seq 1 45); do
        pid2=$(gssh "systemctl show -p MainPID --value dialtone" 2>/dev/null)
        if [ -n "$pid2" ] && [ "$pid2" != 0 ] && [ "$pid2" != "$pid1" ] && gssh "systemctl is-active -q dialtone"; then ok=1; break; fi
        sleep 2
    done
    if [ $ok = 1 ]; then
        pass "watchdog: a hung dialtone is restarted by systemd"
        measure "watchdog: hang -> serving again" "$(since "$T_HANG") s"
    else
        failc "watchdog: dialtone (pid $pid1) not restarted within 90 s of hanging"
    fi
    check "watchdog: the journal says why" gssh "journalctl -u dialtone -o cat --since -3min | grep -qi 'watchdog timeout'"

    # -- upgrade in place: a newer package keeps the configuration, the phones and the leases --
    rm -rf "$T/deb2"
    dpkg-deb -R "$DEB_USED" "$T/deb2"
    sed -i 's/^Version: .*/&+upgrade1/' "$T/deb2/DEBIAN/control"
    dpkg-deb -b --root-owner-group "$T/deb2" "$T/upgrade.deb" >/dev/null
    gssh "cat >/root/upgrade.deb" <"$T/upgrade.deb" || true
    gssh "printf '# the site\x27s phones\n' >/etc/dialtone/phones.toml && chmod 640 /etc/dialtone/phones.toml && chgrp _dialtone /etc/dialtone/phones.toml && sed -i 's/^domain = .*/domain = \"site3.voip\"/' /etc/dialtone/dialtone.toml && systemctl reload dialtone" >>"$T/checks.log" 2>&1 || true
    pid3=$(gssh "systemctl show -p MainPID --value dialtone" 2>/dev/null)
    check "upgrade: dpkg -i of the newer package" gssh "DEBIAN_FRONTEND=noninteractive dpkg -i /root/upgrade.deb"
    check "upgrade: the newer version is installed" gssh "dpkg-query -W -f='\${Version}' dialtone | grep -q '+upgrade1\$'"
    check "upgrade: dialtone restarted and active" \
        gssh "systemctl is-active -q dialtone && test \"\$(systemctl show -p MainPID --value dialtone)\" != $pid3"
    check "upgrade: the edited configuration kept (conffile)" gssh "grep -qx 'domain = \"site3.voip\"' /etc/dialtone/dialtone.toml"
    check "upgrade: the phones file kept" gssh "grep -q 'the site.s phones' /etc/dialtone/phones.toml"
    gssh "dialtone leases --config /etc/dialtone/dialtone.toml" >"$T/leases-u.txt" 2>&1 || true
    check "upgrade: the lease kept" grep -qi "^$TAP_MAC .*bound" "$T/leases-u.txt"
    if dhcp_once; then
        check "upgrade: the same address, the kept configuration" \
            sh -c "test \"\$(grep '^ip=' '$T/lease.env')\" = \"\$(grep '^ip=' '$T/lease-1.env')\" && grep -qx 'domain=site3.voip' '$T/lease.env'"
    else
        failc "upgrade: no DHCP answer after the upgrade"
    fi
else
    for c in "dhcp: lease with the configured options" "dns: SRV _sip._udp.lab.voip" "tftp: byte-exact fetch" \
             "http: byte-exact fetch" "dialtone RSS" "leases kept across a reboot"; do skip "$c (needs the real dialtone)"; done
fi

# ---------------------------------------------------------------------------------------------
# 4b. a DIALTONE USB stick plugged in while running: udev rule -> dialtone-import-medium@.service
# ---------------------------------------------------------------------------------------------
hmp() {   # one command on qemu's human monitor
    python3 - "$T/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.3); s.recv(65536)
s.sendall((sys.argv[2] + "\n").encode()); time.sleep(1); print(s.recv(65536).decode(errors="replace"))
PY
}
{ hmp "drive_add 0 if=none,id=stick,format=raw,file=$T/stick.img" && hmp "device_add usb-storage,bus=xhci.0,drive=stick,id=stickdev"; } >>"$T/monitor.log" 2>&1 ||
    failc "hotplug: could not plug the USB stick into qemu"
ok=0
for _ in $(seq 1 45); do
    gssh "test -f /srv/dialtone/hotplug.cfg" 2>/dev/null && { ok=1; break; }
    sleep 2
done
[ $ok = 1 ] && pass "hotplug: USB stick labelled DIALTONE imported while running (files/ copied)" ||
    failc "hotplug: the USB stick's files/hotplug.cfg did not reach /srv/dialtone within 90 s"
# the files are copied before the reload runs: the unit may still be reloading
# dialtone when the file shows up
eventually 60 "hotplug: dialtone reloaded after the import" \
    gssh "journalctl -b -o cat -u 'dialtone-import-medium@*' | grep -q 'dialtone reloaded'"
{ hmp "device_del stickdev"; } >>"$T/monitor.log" 2>&1 || true
sleep 3

# ---------------------------------------------------------------------------------------------
# 5. reboot: configuration kept, import idempotent, leases kept
# ---------------------------------------------------------------------------------------------
log "rebooting the appliance"
bootid1=$(gssh "cat /proc/sys/kernel/random/boot_id" 2>/dev/null) || die "no boot id over SSH"
firmware_starts() { grep -ac 'BdsDxe: starting' "$T/serial.log" || true; }
starts_before=$(firmware_starts)
gssh "systemctl reboot" >/dev/null 2>&1 || true
T_REBOOT=$(now)
# The emulated machine's reset sometimes hangs under TCG after the guest
# says "reboot: machine restart": the firmware never prints again and qemu
# spins. A person would power-cycle it; the test does the same through the
# monitor, once, and says so (a hang before the guest's restart line, or a
# second one, still fails the run).
firmware_again=
for _ in $(seq 1 120); do
    [ "$(firmware_starts)" -gt "$starts_before" ] && { firmware_again=1; break; }
    sleep 2
done
if [ -z "$firmware_again" ] && grep -aq 'reboot: machine restart' "$T/serial.log"; then
    log "the firmware did not start within 240 s of the guest's restart: resetting the emulated machine (qemu system_reset)"
    measure "reboot: emulated machine reset by hand after a hung restart" "yes"
    hmp "system_reset" >>"$T/monitor.log" 2>&1 || true
fi
wait_for "SSH after the reboot" "$BOOT_TIMEOUT" gssh "test \"\$(cat /proc/sys/kernel/random/boot_id)\" != $bootid1"
measure "reboot -> SSH" "$(since "$T_REBOOT") s"
wait_for "dialtone.service to start after the reboot" 180 gssh "systemctl is-active -q dialtone.service || systemctl is-failed -q dialtone.service"
check "reboot: second boot recorded in the persistent journal" gssh "test \"\$(journalctl --list-boots --no-pager | wc -l)\" -ge 2"
check "reboot: import idempotent (nothing installed again)" \
    gssh "journalctl -b -u dialtone-import -o cat | grep -q 'importing from' && ! journalctl -b -u dialtone-import -o cat | grep -q '^dialtone-import: installed'"
check "reboot: eth0 still $GUEST" gssh "ip -4 -o addr show dev eth0 | grep -q ' $GUEST/24 '"
check "reboot: dialtone.service active" gssh "systemctl is-active -q dialtone.service"
if [ $REAL = 1 ]; then
    gssh "dialtone leases --config /etc/dialtone/dialtone.toml" >"$T/leases-2.txt" 2>&1 || true
    check "reboot: lease kept in dialtone's table" sh -c "grep -qi '^$TAP_MAC ' '$T/leases-2.txt' && test \"\$(grep -i '^$TAP_MAC ' '$T/leases-1.txt' | awk '{print \$2}')\" = \"\$(grep -i '^$TAP_MAC ' '$T/leases-2.txt' | awk '{print \$2}')\""
    if dhcp_once; then
        check "reboot: the same address offered again" sh -c "test \"\$(grep '^ip=' '$T/lease.env')\" = \"\$(grep '^ip=' '$T/lease-1.env')\""
    else
        failc "reboot: no DHCP lease after the reboot"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 6. power off; the report written back onto the medium
# ---------------------------------------------------------------------------------------------
gssh "systemctl poweroff" >/dev/null 2>&1 || true
for _ in $(seq 1 90); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 2; done
kill -0 "$QEMU_PID" 2>/dev/null && failc "poweroff: qemu still running after 180 s"
QEMU_PID=
mtype -i "$T/medium.img" ::import-report.txt >"$T/import-report.txt" 2>/dev/null || true
check "medium: import-report.txt written back, names the refused dialtone.toml" grep -q 'REFUSED dialtone.toml' "$T/import-report.txt"
mtype -i "$T/stick.img" ::import-report.txt >"$T/stick-report.txt" 2>/dev/null || true
check "hotplug stick: import-report.txt written back" grep -q 'copied 1 file' "$T/stick-report.txt"

summary
[ "$FAILED" = 0 ]
