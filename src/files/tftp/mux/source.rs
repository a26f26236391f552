//! The bytes of a read: a file read ahead in large chunks off the runtime,
//! each chunk checked against the file as it was when the transfer began,
//! or bytes in memory (generated files, netascii).

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::super::packet::{self, Mode};
use super::{Key, Loaded, NETASCII_MAX};
use crate::files::resolve::{Body, Found, Stamp, fill_at, read_chunk};

/// The bytes of a read: a file read ahead in large chunks off the runtime,
/// or (generated files, netascii) bytes in memory.
pub(in crate::files::tftp) struct Source {
    file: Option<Arc<std::fs::File>>,
    /// The file as it was when the transfer began: every chunk is checked
    /// against it before and after it is read, so a file written in place
    /// meanwhile ends the transfer with an ERROR, never a mix.
    stamp: Option<Stamp>,
    pub(in crate::files::tftp) size: u64,
    /// Bytes `chunk_at..` of the transfer (all of them when in memory).
    chunk: Bytes,
    chunk_at: u64,
}

/// Where a block's bytes are.
#[derive(Debug, PartialEq)]
pub(super) enum Slice {
    Ready(Bytes),
    /// Read the chunk starting here first.
    Load(u64),
    /// A chunk read from here came back short: the file shrank.
    Shrank,
}

impl Source {
    pub(in crate::files::tftp) async fn new(found: Found, mode: Mode) -> io::Result<Source> {
        let bytes = match (found.body, mode) {
            (Body::File(f), Mode::Octet) => {
                return Ok(Source {
                    stamp: Some(Stamp::of(&f)?),
                    file: Some(Arc::new(f)),
                    size: found.size,
                    chunk: Bytes::new(),
                    chunk_at: 0,
                });
            }
            (Body::Bytes(b), _) => b,
            (Body::File(_), Mode::Netascii) if found.size > NETASCII_MAX => {
                return Err(io::Error::other(format!(
                    "netascii transfers are limited to {} MiB; ask in octet mode",
                    NETASCII_MAX >> 20
                )));
            }
            (Body::File(f), Mode::Netascii) => {
                Bytes::from(read_chunk(Arc::new(f), 0, found.size as usize).await?)
            }
        };
        Ok(Source::in_memory(match mode {
            Mode::Octet => bytes,
            Mode::Netascii => Bytes::from(packet::to_netascii(&bytes)),
        }))
    }

    pub(super) fn in_memory(bytes: Bytes) -> Source {
        Source {
            file: None,
            stamp: None,
            size: bytes.len() as u64,
            chunk: bytes,
            chunk_at: 0,
        }
    }

    /// Bytes `at..at+len` (shorter at the end of the file).
    pub(super) fn slice(&self, at: u64, len: usize) -> Slice {
        let end = (at + len as u64).min(self.size);
        if at >= end {
            return Slice::Ready(Bytes::new());
        }
        let chunk_end = self.chunk_at + self.chunk.len() as u64;
        if self.chunk_at <= at && end <= chunk_end {
            let from = (at - self.chunk_at) as usize;
            return Slice::Ready(self.chunk.slice(from..(end - self.chunk_at) as usize));
        }
        match &self.file {
            // In memory, every byte is there: a range past them cannot be.
            None => Slice::Shrank,
            Some(_) if self.chunk_at == at && !self.chunk.is_empty() => Slice::Shrank,
            Some(_) => Slice::Load(at),
        }
    }

    /// A chunk read at `at` came back: it is the current one now.
    pub(super) fn loaded(&mut self, at: u64, chunk: Bytes) {
        self.chunk = chunk;
        self.chunk_at = at;
    }

    /// Reads the chunk at `at` off the runtime and posts it to `done`,
    /// reusing the current chunk's memory when nothing else holds it and it
    /// is not much larger than `want` (a chunk sized while few transfers ran
    /// is let go when many run, so the read-ahead shrinks for real).
    pub(super) fn load(
        &mut self,
        at: u64,
        want: usize,
        done: mpsc::UnboundedSender<Loaded>,
        key: Key,
    ) {
        let (Some(file), Some(stamp)) = (self.file.clone(), self.stamp) else {
            return;
        };
        let old = std::mem::take(&mut self.chunk);
        let mut buf = old
            .try_into_mut()
            .ok()
            .filter(|b| b.capacity() <= 2 * want)
            .unwrap_or_else(|| BytesMut::with_capacity(want));
        tokio::task::spawn_blocking(move || {
            buf.resize(want, 0);
            let result = stamp
                .check(&file)
                .and_then(|()| fill_at(&file, &mut buf, at))
                .and_then(|n| stamp.check(&file).map(|()| n));
            buf.truncate(*result.as_ref().unwrap_or(&0));
            let _ = done.send(Loaded {
                key,
                at,
                result: result.map(|_| buf.freeze()),
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;

    /// A source reading `bytes` from a file, and the file's path.
    fn file_source(bytes: &[u8], tag: &str) -> (Source, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("dialtone-mux-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let s = Source {
            stamp: Some(Stamp::of(&f).unwrap()),
            file: Some(Arc::new(f)),
            size: bytes.len() as u64,
            chunk: Bytes::new(),
            chunk_at: 0,
        };
        (s, path)
    }

    #[test]
    fn in_memory_sources_slice_without_loading() {
        let s = Source::in_memory(Bytes::from_static(b"0123456789"));
        assert_eq!(s.slice(0, 4), Slice::Ready(Bytes::from_static(b"0123")));
        assert_eq!(s.slice(8, 4), Slice::Ready(Bytes::from_static(b"89")));
        // The empty last block of a size that is a multiple of blksize.
        assert_eq!(s.slice(10, 4), Slice::Ready(Bytes::new()));
    }

    #[tokio::test]
    async fn file_sources_load_chunks_and_notice_a_shrunk_file() {
        let (mut s, path) = file_source(b"abcdefghij", "chunks");
        assert_eq!(s.slice(4, 4), Slice::Load(4));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = Key {
            client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            serial: 1,
        };
        s.load(4, 6, tx.clone(), key);
        let l = rx.recv().await.unwrap();
        assert_eq!((l.key, l.at), (key, 4));
        s.chunk = l.result.unwrap();
        s.chunk_at = l.at;
        assert_eq!(s.slice(4, 4), Slice::Ready(Bytes::from_static(b"efgh")));
        assert_eq!(s.slice(8, 4), Slice::Ready(Bytes::from_static(b"ij")));
        assert_eq!(s.slice(0, 4), Slice::Load(0));
        // A file that was 12 bytes when the transfer began and is 10 now:
        // the chunk read from 8 brings 2 bytes where 4 were due.
        s.size = 12;
        s.load(8, 6, tx, key);
        let l = rx.recv().await.unwrap();
        s.chunk = l.result.unwrap();
        s.chunk_at = l.at;
        assert_eq!(s.slice(8, 4), Slice::Shrank);
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn a_file_written_in_place_during_a_transfer_fails_its_next_chunk() {
        let (mut s, path) = file_source(b"abcdefghij", "inplace");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = Key {
            client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            serial: 1,
        };
        s.load(0, 4, tx.clone(), key);
        assert!(rx.recv().await.unwrap().result.is_ok());
        // The same size, other bytes, written into the same file.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&path, b"ABCDEFGHIJ").unwrap();
        s.load(4, 6, tx, key);
        let err = rx.recv().await.unwrap().result.unwrap_err();
        assert_eq!(err.to_string(), crate::files::resolve::CHANGED);
        std::fs::remove_file(path).unwrap();
    }
}
