//! Whether any of a few sockets has a datagram waiting, without waiting:
//! poll(2) with a zero timeout, on descriptor numbers. The runtime's
//! threads ask this while they spin before a park (`files::tftp::pace`),
//! so a spin ends as soon as an ACK is there. nix's `poll` takes borrowed
//! descriptors; these are numbers that the TFTP mux registered and may have
//! closed since, which poll(2) answers with POLLNVAL (not ready), and a
//! number taken over by another file only ends one spin early.

use std::os::fd::RawFd;

/// The most descriptors asked about at once.
pub const MAX: usize = 8;

/// True when one of `fds` (at most `MAX`; the rest are not asked about)
/// has data to read.
pub fn any_readable(fds: &[RawFd]) -> bool {
    if fds.is_empty() {
        // No system call for nothing: a spin with no socket watched.
        return false;
    }
    let mut polled = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX];
    let n = fds.len().min(MAX);
    for (p, &fd) in polled.iter_mut().zip(&fds[..n]) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `polled` is a local array of `MAX` initialised pollfd
    // structures and `n` is at most `MAX`; poll(2) with a zero timeout
    // only writes their `revents` and keeps no pointer to them.
    let rc = unsafe { libc::poll(polled.as_mut_ptr(), n as libc::nfds_t, 0) };
    rc > 0 && polled[..n].iter().any(|p| p.revents & libc::POLLIN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn says_whether_a_datagram_waits() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = [a.as_raw_fd(), b.as_raw_fd()];
        assert!(!any_readable(&fds));
        assert!(!any_readable(&[]));
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        // Loopback delivers within the call, but give it a moment.
        for _ in 0..100 {
            if any_readable(&fds) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(any_readable(&fds));
        assert!(!any_readable(&fds[..1]), "only b has one");
        // A number no file has: not ready, no error.
        assert!(!any_readable(&[1 << 20]));
        let mut one = [0u8; 4];
        b.recv(&mut one).unwrap();
        assert!(!any_readable(&fds));
    }
}
