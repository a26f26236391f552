#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (run as root): installs the
# real DHCP clients and tools the tests drive, then formats, lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 udhcpc isc-dhcp-client dhcpcd-base isc-dhcp-relay busybox sqlite3 bind9-dnsutils knot-dnsutils sntp tftp-hpa atftp curl lintian systemd strace)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
