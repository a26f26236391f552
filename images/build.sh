#!/bin/bash
# images/build.sh: build the dialtone appliance disk image (UEFI, GPT, Debian 12 "bookworm").
#
#   bash images/build.sh                      # .deb built first (images/deb.sh, else cargo deb)
#   DEB=/path/to/dialtone_X_amd64.deb bash images/build.sh
#
# Output (under target/images/):
#   dialtone.qcow2      for VMs (qemu/libvirt/Proxmox), compressed qcow2
#   dialtone.raw.zst    for real disks: zstd -dc dialtone.raw.zst | dd of=/dev/sdX bs=4M conv=fsync
#   dialtone.packages   the image's package list (dpkg -l); dialtone.build-info: what went in
#
# How (no mounts of the image, no loop devices: the build host's kernel may lack VFAT):
#   1. base root file system: mmdebstrap of images/packages.txt into a tarball, cached under
#      target/images/cache/ keyed on the package list and this recipe (REFRESH=1 forces a new one,
#      e.g. for security updates).  Cold: about two minutes (downloads ~250 MB); cached: skipped.
#   2. unpack the base, install the dialtone .deb in a chroot (dpkg -i), lay images/rootfs/ over it
#      (import script, units, networkd default, sshd settings), configure (fstab, kernel command
#      line, locked root, no SSH host keys, empty machine-id, enabled/masked units).
#   3. systemd-boot: `bootctl install` and `kernel-install add` inside the chroot into a staging
#      directory that becomes the EFI system partition, in the standard Boot Loader Specification
#      layout, so kernel updates inside the appliance (apt) keep working through kernel-install.
#   4. file systems from directories: mkfs.ext4 -d (root), mkfs.vfat + mcopy (ESP).
#   5. GPT disk assembled in a file with sfdisk, partitions written with dd at their offsets.
#   6. qemu-img convert to qcow2, zstd for the raw disk.
#
# Settings (environment): DEB, OUT (target/images), MIRROR, SECURITY_MIRROR, EXTRA_PACKAGES
# ("firmware-realtek firmware-misc-nonfree" for real hardware), ESP_MB (256), ROOT_MB (1792),
# ZSTD_LEVEL (10), REFRESH=1, KEEP_WORK=1 (keep target/images/work for inspection).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
OUT=${OUT:-$REPO/target/images}
CACHE=$OUT/cache
WORK=$OUT/work
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
ESP_MB=${ESP_MB:-256}
ROOT_MB=${ROOT_MB:-1792}
ZSTD_LEVEL=${ZSTD_LEVEL:-10}
# Bump when the base recipe (mmdebstrap options below) changes, to invalidate cached bases.
BASE_RECIPE=2

# GPT partition types: EFI system partition, and root (x86-64) of the Discoverable Partitions
# Specification (systemd-repart matches it to grow the root on first boot).
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709

die() { echo "build.sh: ERROR: $*" >&2; exit 1; }
step() { STEP_T0=$(date +%s.%N); echo "==> $*"; }
declare -a TIMES=()
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
done_step() { TIMES+=("$(printf '%-24s %7s s' "$1" "$(elapsed "$STEP_T0")")"); }
T_START=$(date +%s.%N)

# ---------------------------------------------------------------------------------------------
# 0. preconditions: root (mmdebstrap's root mode, chroot, files owned by root in mkfs.ext4 -d)
#    and the tools, installed from Debian when missing.
# ---------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot and mkfs.ext4 -d need it)"
declare -A TOOL_PKG=([mmdebstrap]=mmdebstrap [mcopy]=mtools [mkfs.vfat]=dosfstools [mkfs.ext4]=e2fsprogs
    [sfdisk]=fdisk [qemu-img]=qemu-utils [zstd]=zstd [unshare]=util-linux [dpkg-deb]=dpkg)
missing=()
for t in "${!TOOL_PKG[@]}"; do command -v "$t" >/dev/null || missing+=("${TOOL_PKG[$t]}"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing build tools: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
        die "could not install ${missing[*]} (apt-get update first?)"
fi
mkdir -p "$CACHE"

# The .deb: given, or built from this checkout: images/deb.sh (the project's packaging entry
# point: release build, man pages, completions, then cargo-deb) when present, else `cargo deb`.
if [ -z "${DEB:-}" ]; then
    command -v cargo >/dev/null || die "cargo not found; give DEB=/path/to/dialtone_*_amd64.deb"
    if [ -f "$HERE/deb.sh" ]; then
        step "no DEB given: bash images/deb.sh"
        bash "$HERE/deb.sh" || die "images/deb.sh failed"
    else
        step "no DEB given: cargo deb"
        (cd "$REPO" && cargo deb) || die "cargo deb failed (is cargo-deb installed? cargo install cargo-deb)"
    fi
    DEB=$(ls -t "$REPO"/target/debian/dialtone_*_amd64.deb 2>/dev/null | head -1)
    [ -n "$DEB" ] || die "no target/debian/dialtone_*_amd64.deb after building the package"
    done_step "build the .deb"
fi
[ -f "$DEB" ] || die "DEB=$DEB: no such file"
DEB=$(readlink -f "$DEB")
[ "$(dpkg-deb -f "$DEB" Package)" = dialtone ] || die "$DEB is not the dialtone package"
DEB_VERSION=$(dpkg-deb -f "$DEB" Version)
echo "    dialtone package: $DEB ($DEB_VERSION)"
# The package that goes into the image, kept beside it (the boot test upgrades from it).
cp "$DEB" "$OUT/dialtone.deb.new" && mv "$OUT/dialtone.deb.new" "$OUT/dialtone.deb"

# ---------------------------------------------------------------------------------------------
# 1. base root file system (cached)
# ---------------------------------------------------------------------------------------------
PACKAGES=$( { grep -v '^[[:space:]]*#' "$HERE/packages.txt"; echo "$EXTRA_PACKAGES" | tr ' ' '\n'; } |
    sed 's/#.*//; s/[[:space:]]//g' | grep . | sort -u | paste -sd, -)
# Sources of the image: Debian, its updates and security updates; non-free-firmware so that
# NIC firmware (EXTRA_PACKAGES, or apt later) can be had.
SOURCES=("deb $MIRROR $SUITE main non-free-firmware"
         "deb $MIRROR $SUITE-updates main non-free-firmware"
         "deb $SECURITY_MIRROR $SUITE-security main non-free-firmware")
MM_OPTS=(--variant=minbase --include="$PACKAGES"
    --aptopt='Acquire::Languages "none"'
    # no man pages, no translations, no docs but the copyright files and dialtone's own
    # (README, examples, this appliance's guide) (kept for upgrades too:
    # mmdebstrap writes these to /etc/dpkg/dpkg.cfg.d/ in the image)
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-include=/usr/share/doc/dialtone/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*')
KEY=$(printf '%s\n' "$BASE_RECIPE" "$SUITE" "${SOURCES[@]}" "${MM_OPTS[@]}" | sha256sum | cut -c1-16)
BASE=$CACHE/base-$KEY.tar
if [ -f "$BASE" ] && [ "${REFRESH:-0}" != 1 ]; then
    echo "==> base root file system: cached $(basename "$BASE") (built $(cat "$BASE.date" 2>/dev/null || echo '?'); REFRESH=1 rebuilds)"
else
    step "base root file system: mmdebstrap $SUITE (key $KEY)"
    rm -rf "$CACHE/partial.tar"
    mmdebstrap --format=tar "${MM_OPTS[@]}" "$SUITE" "$CACHE/partial.tar" "${SOURCES[@]}" >"$CACHE/mmdebstrap.log" 2>&1 ||
        { tail -30 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (full log: $CACHE/mmdebstrap.log)"; }
    mv "$CACHE/partial.tar" "$BASE"
    date -u '+%Y-%m-%d %H:%M UTC' >"$BASE.date"
    # keep only this base
    find "$CACHE" -maxdepth 1 -name 'base-*.tar*' ! -name "base-$KEY.tar*" -delete
    done_step "mmdebstrap (cold)"
fi

# ---------------------------------------------------------------------------------------------
# 2. the image's root: unpack, install dialtone, overlay, configure
# ---------------------------------------------------------------------------------------------
step "unpack base"
rm -rf "$WORK"
mkdir -p "$WORK/esp"
ROOT=$WORK/root
mkdir "$ROOT"
tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE"
done_step "unpack base"

# Run a command chrooted into the image, with /proc mounted in a private mount namespace
# (unshare -m): the mount vanishes with the command, nothing can leak onto the host.
in_root() {
    unshare --mount --fork -- /bin/sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$ROOT" "$@"
}

step "install $(basename "$DEB")"
# no daemons are started in the chroot
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp "$DEB" "$ROOT/tmp/dialtone.deb"
if ! in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/dialtone.deb >"$WORK/dpkg.log" 2>&1; then
    cat "$WORK/dpkg.log" >&2
    die "dpkg -i failed in the image. The package depends on: $(dpkg-deb -f "$DEB" Depends);
    a dependency missing from the image belongs in images/packages.txt"
fi
rm -f "$ROOT/tmp/dialtone.deb"
[ -x "$ROOT/usr/sbin/dialtone" ] || die "the package did not install /usr/sbin/dialtone"
[ -f "$ROOT/lib/systemd/system/dialtone.service" ] || [ -f "$ROOT/usr/lib/systemd/system/dialtone.service" ] ||
    die "the package did not install dialtone.service"
done_step "install .deb"

step "overlay images/rootfs and configure"
# files owned by root whoever checked the repository out
cp -R --preserve=mode,timestamps "$HERE/rootfs/." "$ROOT/"
install -D -m 644 "$REPO/docs/appliance.md" "$ROOT/usr/share/doc/dialtone/appliance.md"

ROOT_PARTUUID=$(cat /proc/sys/kernel/random/uuid)
ESP_PARTUUID=$(cat /proc/sys/kernel/random/uuid)
ROOT_FSUUID=$(cat /proc/sys/kernel/random/uuid)
ESP_VOLID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')

echo dialtone >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdialtone\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
cat >"$ROOT/etc/fstab" <<EOF
# dialtone appliance (written by images/build.sh)
# root grows with the partition (systemd-repart on first boot, see /usr/lib/repart.d)
PARTUUID=$ROOT_PARTUUID  /          ext4  rw,errors=remount-ro,x-systemd.growfs  0 1
# EFI system partition: systemd-boot, kernels and initrds (kernel-install keeps it current).
# nofail: the boot never waits for it; 90 s for its device to show up (a loaded
# host or a slow disk can keep udev from starting for half a minute)
PARTUUID=$ESP_PARTUUID  /boot/efi  vfat  umask=0077,nofail,x-systemd.device-timeout=90s  0 2
EOF
mkdir -p "$ROOT/boot/efi"
# Kernel command line for every boot entry (kernel-install reads /etc/kernel/cmdline):
# net.ifnames=0 keeps the classic eth0, eth1 names (the same on every VM and mini PC, so the
# documented eth0.network works); consoles: the screen and the first serial port (the last
# console= is where systemd's boot messages go: serial, for headless boxes and tests).
KERNEL_CMDLINE="root=PARTUUID=$ROOT_PARTUUID ro rootwait net.ifnames=0 console=tty0 console=ttyS0,115200n8"
mkdir -p "$ROOT/etc/kernel"
echo "$KERNEL_CMDLINE" >"$ROOT/etc/kernel/cmdline"
echo dialtone >"$ROOT/etc/kernel/entry-token"
printf 'layout=bls\n' >"$ROOT/etc/kernel/install.conf"

# No passwords: root is locked ("*" never matches), SSH takes keys only (sshd_config.d).
sed -i 's/^root:[^:]*:/root:*:/' "$ROOT/etc/shadow"
# Identity must be per appliance: no SSH host keys (created at first start), empty machine-id
# (systemd makes one on first boot).
rm -f "$ROOT"/etc/ssh/ssh_host_*
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
# persistent journal
mkdir -p "$ROOT/var/log/journal"
# name resolution: no resolver daemon (dialtone answers the voice zone itself, port 53); names
# outside it use what a .network file or this file gives
printf '# dialtone appliance: add "nameserver ADDRESS" lines for names outside the voice zone\n' >"$ROOT/etc/resolv.conf"

# Units: ours on, systemd-networkd on (its Also= brings wait-online), dialtone on; off: the
# first-boot prompts (no keyboard: they would hold the boot) and apt's timers (no internet).
in_root systemctl enable dialtone-import.service dialtone-issue.timer systemd-networkd.service \
    dialtone.service >/dev/null 2>&1 || die "systemctl enable failed"
in_root systemctl mask systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 ||
    die "systemctl mask failed"
done_step "overlay + configure"

# ---------------------------------------------------------------------------------------------
# 3. systemd-boot and the kernels into the ESP staging directory
# ---------------------------------------------------------------------------------------------
step "systemd-boot + kernel-install"
# In a private mount namespace, a tmpfs on the image's /boot/efi stands in for the ESP:
# bootctl wants the ESP to be a mount point (SYSTEMD_RELAX_ESP_CHECKS lets it be something
# other than VFAT), and kernel-install writes paths relative to the mount point into the boot
# entries.  The result is copied to $WORK/esp, which becomes the ESP.
for kver in $(ls "$ROOT/lib/modules"); do
    [ -f "$ROOT/boot/initrd.img-$kver" ] || in_root update-initramfs -c -k "$kver" >/dev/null
done
unshare --mount --fork -- /bin/bash -euc '
    root=$1 esp=$2
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o mode=0700 esp "$root/boot/efi"
    chroot "$root" env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl install --esp-path=/boot/efi --no-variables \
        --entry-token=literal:dialtone --make-entry-directory=yes
    for kver in $(ls "$root/lib/modules"); do
        chroot "$root" env SYSTEMD_RELAX_ESP_CHECKS=1 kernel-install --verbose add "$kver" \
            "/boot/vmlinuz-$kver" "/boot/initrd.img-$kver"
    done
    cp -R "$root/boot/efi/." "$esp/"
' build-esp "$ROOT" "$WORK/esp" >"$WORK/bootctl.log" 2>&1 ||
    { cat "$WORK/bootctl.log" >&2; die "bootctl install / kernel-install failed"; }
# boot menu: 2 s (hold a key for the menu with the older kernel after an upgrade), no command
# line editing (it would give a root shell without a password)
printf 'default dialtone-*\ntimeout 2\neditor no\nconsole-mode keep\n' >"$WORK/esp/loader/loader.conf"
# a random seed must not be shared by every appliance
rm -f "$WORK/esp/loader/random-seed"
ls "$WORK"/esp/loader/entries/*.conf >/dev/null 2>&1 || die "no boot entry was written"
done_step "systemd-boot + kernels"

# clean up what the image must not carry
rm -f "$ROOT/usr/sbin/policy-rc.d"
rm -rf "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/dev/*
in_root dpkg-query -W -f='${Package}\t${Version}\n' >"$WORK/packages" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# 4. file systems from the directories (no mount)
# ---------------------------------------------------------------------------------------------
step "mkfs.ext4 -d, mkfs.vfat + mcopy"
used_mb=$(du -sm "$ROOT" | cut -f1)
[ "$used_mb" -lt $((ROOT_MB * 85 / 100)) ] || die "root needs ${used_mb} MiB, ROOT_MB=$ROOT_MB is too small"
truncate -s "${ROOT_MB}M" "$WORK/root.img"
mkfs.ext4 -q -F -L dialtone-root -U "$ROOT_FSUUID" -E root_owner=0:0 -d "$ROOT" "$WORK/root.img" "${ROOT_MB}M" ||
    die "mkfs.ext4 -d failed"
truncate -s "${ESP_MB}M" "$WORK/esp.img"
mkfs.vfat -F 32 -n ESP -i "$ESP_VOLID" "$WORK/esp.img" >/dev/null || die "mkfs.vfat failed"
MTOOLS_SKIP_CHECK=1 mcopy -s -p -Q -m -i "$WORK/esp.img" "$WORK"/esp/* ::/ || die "mcopy into the ESP failed"
done_step "file systems"

# ---------------------------------------------------------------------------------------------
# 5. GPT disk: 1 MiB, ESP, root, and room for the backup GPT at the end
# ---------------------------------------------------------------------------------------------
step "GPT disk"
DISK=$WORK/dialtone.raw
esp_start=2048                                  # sectors of 512 bytes: 1 MiB
esp_size=$((ESP_MB * 2048))
root_start=$((esp_start + esp_size))
root_size=$((ROOT_MB * 2048))
disk_size_mb=$((1 + ESP_MB + ROOT_MB + 1))
rm -f "$DISK"; truncate -s "${disk_size_mb}M" "$DISK"
sfdisk --quiet "$DISK" <<EOF || die "sfdisk failed"
label: gpt
unit: sectors
first-lba: 2048
start=$esp_start, size=$esp_size, type=$ESP_TYPE, uuid=$ESP_PARTUUID, name="ESP"
start=$root_start, size=$root_size, type=$ROOT_TYPE, uuid=$ROOT_PARTUUID, name="dialtone-root"
EOF
dd if="$WORK/esp.img" of="$DISK" bs=1M seek=$((esp_start / 2048)) conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$DISK" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
rm -f "$WORK/esp.img" "$WORK/root.img"
done_step "GPT disk"

# ---------------------------------------------------------------------------------------------
# 6. outputs
# ---------------------------------------------------------------------------------------------
step "qcow2 + raw.zst"
qemu-img convert -c -O qcow2 "$DISK" "$OUT/dialtone.qcow2.tmp" & qpid=$!
zstd -q -f -T0 "-$ZSTD_LEVEL" "$DISK" -o "$OUT/dialtone.raw.zst.tmp" || die "zstd failed"
wait $qpid || die "qemu-img convert failed"
mv "$OUT/dialtone.qcow2.tmp" "$OUT/dialtone.qcow2"
mv "$OUT/dialtone.raw.zst.tmp" "$OUT/dialtone.raw.zst"
cp "$WORK/packages" "$OUT/dialtone.packages"
kvers=$(ls "$ROOT/lib/modules" | paste -sd' ')
cat >"$OUT/dialtone.build-info" <<EOF
built:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')
dialtone:     $DEB_VERSION ($(basename "$DEB"), sha256 $(sha256sum "$DEB" | cut -c1-16))
base:         $(basename "$BASE") (mmdebstrap $SUITE, $(cat "$BASE.date" 2>/dev/null))
kernel:       $kvers
cmdline:      $KERNEL_CMDLINE
disk:         ${disk_size_mb} MiB: ESP ${ESP_MB} MiB (PARTUUID $ESP_PARTUUID), root ${ROOT_MB} MiB ext4 (PARTUUID $ROOT_PARTUUID), ${used_mb} MiB used
EOF
done_step "qcow2 + raw.zst"
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"

echo
echo "==> done in $(elapsed "$T_START") s"
printf '    %s\n' "${TIMES[@]}"
echo "    root file system: ${used_mb} MiB used of ${ROOT_MB} MiB"
for f in dialtone.qcow2 dialtone.raw.zst; do
    printf '    %-18s %6s MiB\n' "$f" "$(( $(stat -c %s "$OUT/$f") / 1048576 ))"
done
