#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (run as root): installs the
# real DHCP clients and tools the tests drive, then formats, lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 udhcpc isc-dhcp-client dhcpcd-base isc-dhcp-relay busybox sqlite3 bind9-dnsutils knot-dnsutils sntp tftp-hpa atftp curl lintian systemd strace faketime
    # the appliance image (images/build.sh) and its boot test (images/boot-test.sh)
    # the status page's tests: headless Chromium and promtool
    chromium prometheus
    # a real SIP registrar for the phones' REGISTER, and a second SIP client
    kamailio sipsak
    mmdebstrap mtools dosfstools e2fsprogs fdisk qemu-utils zstd qemu-system-x86 ovmf openssh-client python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/dialtone-apt.log 2>&1; then
        # a qemu-utils newer than the release's (from backports) blocks qemu-system-x86:
        # take the release's qemu-utils with it
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}" "qemu-utils/$codename" \
            >/tmp/dialtone-apt.log 2>&1 || { tail -20 /tmp/dialtone-apt.log; exit 1; }
    fi
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
