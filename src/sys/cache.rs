//! Whether a file's bytes are in the page cache, from mincore(2) over a
//! one-page read-only mapping: three system calls (mmap, mincore, munmap)
//! that start no read and keep nothing. nix wraps mmap but not mincore.
//!
//! preadv2(2) with RWF_NOWAIT was used before: a one-byte read that fails
//! with EAGAIN instead of waiting. It is not a pure question: a miss still
//! queues readahead for that page, and when the disk answers before the
//! call looks again (a virtual disk backed by the host's cache, under load)
//! it reads the byte and says "cached" about a page that was not. Measured
//! here: 3 wrong answers in 300 runs while another process wrote to the disk.

use std::fs::File;
use std::num::NonZeroUsize;

fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The residency bytes mincore(2) writes for `len` bytes of `file` from
/// `offset` (a multiple of the page size): one per page, bit 0 set when the
/// page is in the page cache. None when the file cannot be mapped.
fn residency(file: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let size = NonZeroUsize::new(len)?;
    let at = libc::off_t::try_from(offset).ok()?;
    let prot = nix::sys::mman::ProtFlags::PROT_READ;
    let flags = nix::sys::mman::MapFlags::MAP_SHARED;
    // SAFETY: a fresh read-only mapping of a file this process holds open;
    // nothing reads through it (no page is faulted in), it is only handed
    // to mincore and unmapped below.
    let map = unsafe { nix::sys::mman::mmap(None, size, prot, flags, file, at) }.ok()?;
    let mut vec = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: `map` is the mapping of `len` bytes made above; `vec` holds
    // one byte for each of its pages, as mincore writes.
    let rc = unsafe { libc::mincore(map.as_ptr(), len, vec.as_mut_ptr()) };
    // SAFETY: the mapping made above, unmapped once, with its own length;
    // no reference into it exists.
    let _ = unsafe { nix::sys::mman::munmap(map, len) };
    (rc == 0).then_some(vec)
}

/// True when the byte at `offset` is in the page cache (or lies past the
/// end). Also true when the kernel cannot say (a file that cannot be
/// mapped): the caller then reads as it would have anyway.
pub fn cached(file: &File, offset: u64) -> bool {
    match file.metadata() {
        Ok(m) if offset >= m.len() => return true,
        Ok(_) => {}
        Err(_) => return true,
    }
    let page = page_size() as u64;
    match residency(file, offset - offset % page, page as usize) {
        Some(v) => v.first().is_some_and(|b| b & 1 == 1),
        None => true,
    }
}

/// How many of the first `len` bytes' pages of `file` are in the page
/// cache.
#[cfg(test)]
pub fn resident_pages(file: &File, len: usize) -> usize {
    let v = residency(file, 0, len).expect("mincore over the file");
    v.iter().filter(|b| **b & 1 == 1).count()
}

/// A file of `len` bytes whose pages are not in the page cache, and its
/// path (remove it when done). It lies on the build tree's disk: a temp
/// folder may be tmpfs, which cannot drop its pages.
///
/// POSIX_FADV_DONTNEED is advice: a page that writeback, reclaim or the
/// flusher holds at that instant stays. So the helper asks again until
/// mincore shows no page resident, and fails the test loudly if the kernel
/// never lets go.
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
    for _ in 0..200 {
        nix::fcntl::posix_fadvise(&f, 0, 0, drop).unwrap();
        if resident_pages(&f, len) == 0 {
            return (f, path);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left = resident_pages(&f, len);
    let _ = std::fs::remove_file(&path);
    panic!(
        "{left} pages of {} stay in the page cache after 2 s of DONTNEED",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_file_dropped_from_the_cache_reads_as_not_cached_until_read() {
        let (f, path) = cold_file("cache-test", 1 << 20);
        assert_eq!(resident_pages(&f, 1 << 20), 0);
        assert!(!cached(&f, 4096), "the page was dropped");
        let mut buf = [0u8; 16];
        f.read_exact_at(&mut buf, 4096).unwrap();
        assert!(cached(&f, 4096));
        assert!(cached(&f, 10 << 20), "past the end");
        std::fs::remove_file(path).unwrap();
    }
}
