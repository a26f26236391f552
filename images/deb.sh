#!/usr/bin/env bash
# Builds the Debian package target/debian/dialtone_<version>-1_amd64.deb:
# the release binary, man pages and completions generated from its own CLI,
# then cargo-deb (installed from crates.io if missing) packs them with the
# unit, sysusers and tmpfiles entries of systemd/ and the default
# configuration of config/appliance.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
cargo build --release --locked
bin=target/release/dialtone
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" manpages "$assets/man"
gzip -9n "$assets"/man/*.1
"$bin" completions bash > "$assets/completions/dialtone"
"$bin" completions zsh > "$assets/completions/_dialtone"
cargo deb --no-build --locked "$@"
ls -1 target/debian/*.deb
