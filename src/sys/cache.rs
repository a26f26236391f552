//! Whether a file's bytes are in the page cache, from preadv2(2) with
//! RWF_NOWAIT: a one-byte read that fails with EAGAIN instead of waiting for
//! the disk. nix has no wrapper for preadv2; the call reads into one byte
//! on the stack and keeps nothing.

use std::fs::File;
use std::os::fd::AsRawFd;

/// True when the byte at `offset` can be read without waiting for the disk
/// (or lies past the end). Also true when the filesystem cannot say (no
/// RWF_NOWAIT support): the caller then reads as it would have anyway.
pub fn cached(file: &File, offset: u64) -> bool {
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return true;
    };
    let mut byte = [0u8; 1];
    let iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: `iov` describes one writable byte that outlives the call; the
    // descriptor is borrowed from `file` for the call's length.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    n >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EAGAIN
}

/// A file of `len` bytes whose pages are not in the page cache, and its
/// path (remove it when done). It lies on the build tree's disk: a temp
/// folder may be tmpfs, which cannot drop its pages.
#[cfg(test)]
pub fn cold_file(tag: &str, len: usize) -> (File, std::path::PathBuf) {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}-{}", std::process::id()));
    let mut f = File::create(&path).unwrap();
    f.write_all(&vec![5u8; len]).unwrap();
    f.sync_all().unwrap();
    let f = File::open(&path).unwrap();
    let drop = nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED;
    nix::fcntl::posix_fadvise(&f, 0, 0, drop).unwrap();
    (f, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_file_dropped_from_the_cache_reads_as_not_cached_until_read() {
        let (f, path) = cold_file("cache-test", 1 << 20);
        assert!(!cached(&f, 4096), "the page was dropped");
        let mut buf = [0u8; 16];
        f.read_exact_at(&mut buf, 4096).unwrap();
        assert!(cached(&f, 4096));
        assert!(cached(&f, 10 << 20), "past the end");
        std::fs::remove_file(path).unwrap();
    }
}
