//! The appliance image, end to end: `images/boot-test.sh` builds the
//! Debian package and the UEFI disk image, boots it under qemu (TCG unless
//! the CPU offers hardware virtualisation) inside a network namespace of its
//! own on a tap device, configures it with systemd credentials and a
//! DIALTONE medium, and from the other side of the tap checks DHCP (udhcpc),
//! DNS (dig), TFTP and HTTP byte-exact, then over SSH: dialtone as
//! _dialtone, a reload seen by the next DHCP answer and a broken file
//! refused, a hung dialtone restarted by the watchdog, an upgrade in place
//! keeping the configuration, the phones and the leases, a USB stick
//! imported while running, and the leases kept across a reboot.
//!
//! It takes a few minutes (docs/benchmarks.md has the figures); the base
//! root file system is cached under target/images/cache.

use std::process::Command;
use std::time::Instant;

#[test]
fn the_appliance_image_boots_serves_reloads_upgrades_and_keeps_its_leases() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the boot test builds an image and network namespaces: run as root (CI does)"
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/images/boot-test.sh"))
        .output()
        .expect("bash images/boot-test.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("PASS") || l.contains("FAIL") || l.contains("SKIP") || l.contains("measure")
        })
        .collect();
    assert!(
        out.status.success(),
        "boot test failed after {:?}:\n{}\n--- last output ---\n{}",
        started.elapsed(),
        summary.join("\n"),
        text.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !text.contains("SKIP "),
        "checks were skipped (the image must hold the real dialtone):\n{}",
        summary.join("\n")
    );
    let passed = summary.iter().filter(|l| l.contains("PASS")).count();
    assert!(
        passed >= 40,
        "only {passed} checks passed:\n{}",
        summary.join("\n")
    );
    eprintln!("boot test: {passed} checks in {:?}", started.elapsed());
}
