//! TFTP write requests into the upload folder (`[files] upload`): phone logs
//! and the like, under the folder's rules (`files::upload`): a hidden
//! partial file renamed over the target only when the last block has
//! arrived.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::UdpSocket;

use super::pace;
use super::packet::{self, Mode, Packet, Request};
use super::receive::{Got, NetasciiDecoder, Receive};
use super::server::{Tftp, begin};
use crate::files::transfers::{Outcome, Transfer};
use crate::files::upload::{open_partial, put_in_place, target};
use crate::units::Mac;

/// Partial files are written through a buffer of this size.
const WRITE_BUFFER: usize = 256 << 10;

/// The size the client announced with `tsize`, if any.
fn announced(options: &[(String, String)]) -> Option<u64> {
    options
        .iter()
        .find(|(k, _)| k == "tsize")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// One write request from start to end, with its event.
pub async fn receive(
    tftp: &Tftp,
    folder: &Path,
    interface: &str,
    req: Request,
    from: SocketAddrV4,
    local: Ipv4Addr,
) {
    let Some((client, mut record, sock)) = begin(tftp, "tftp-upload", interface, &req, from, local)
    else {
        return;
    };
    match store(tftp, folder, &sock, &req, client.mac, &mut record).await {
        Ok((rx, timeout)) => {
            record.outcome = Outcome::Complete;
            tftp.counters.finish(&record);
            dally(&sock, rx, timeout, tftp.config.tftp_retries).await;
        }
        Err((outcome, detail)) => {
            record.outcome = outcome;
            if !detail.is_empty() {
                record.detail = format!("{}; {detail}", record.detail);
            }
            tftp.counters.finish(&record);
        }
    }
}

/// After the last block: if the sender did not get the final
/// acknowledgement, it sends its last block again; acknowledge it again
/// (RFC 1350's dally) until a timeout passes quietly, a bounded number of
/// times.
async fn dally(sock: &UdpSocket, mut rx: Receive, timeout: Duration, retries: u32) {
    let mut buf = vec![0u8; usize::from(packet::MAX_BLKSIZE) + 5];
    for _ in 0..=retries {
        let Ok(Ok(len)) = tokio::time::timeout(timeout, sock.recv(&mut buf)).await else {
            return;
        };
        if let Ok(Packet::Data { block, data }) = packet::parse(&buf[..len])
            && let Got::Ack(b) = rx.on_data(block, data.len())
        {
            let _ = sock.send(&packet::ack(b)).await;
        }
    }
}

/// Receives the upload and puts it in place (then the receiver, for the
/// dally, and the timeout), or how it ended and why.
async fn store(
    tftp: &Tftp,
    folder: &Path,
    sock: &UdpSocket,
    req: &Request,
    sender: Option<Mac>,
    record: &mut Transfer,
) -> Result<(Receive, Duration), (Outcome, String)> {
    let max = tftp.config.upload_max;
    let parts = match target(&req.filename, &folder.display().to_string(), sender, false) {
        Ok(p) => p,
        Err(why) => {
            let _ = sock
                .send(&packet::error(packet::ERR_ACCESS, "Access violation"))
                .await;
            return Err((Outcome::Refused, why));
        }
    };
    let size = announced(&req.options);
    record.total = size;
    if let Some(n) = size.filter(|n| *n > max) {
        let why = format!("uploads are limited to {max} bytes");
        let _ = sock.send(&packet::error(packet::ERR_DISK_FULL, &why)).await;
        return Err((Outcome::Refused, format!("{n} bytes announced; {why}")));
    }
    let opened = {
        let folder = folder.to_path_buf();
        tokio::task::spawn_blocking(move || open_partial(&folder, &parts)).await
    };
    let (target, mut partial, file) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let _ = sock
                .send(&packet::error(packet::ERR_ACCESS, "cannot store the file"))
                .await;
            return Err((Outcome::Failed, e.to_string()));
        }
        Err(e) => return Err((Outcome::Failed, e.to_string())),
    };
    record.file = Some(target.display().to_string());
    let n = tftp.negotiate(req, size.unwrap_or(0), record);
    let first = if n.oack.is_empty() {
        packet::ack(0)
    } else {
        packet::oack(&n.oack)
    };
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
    let mut rx = Receive::new(n.blksize, n.window, max);
    let mut netascii = (req.mode == Mode::Netascii).then(NetasciiDecoder::default);
    let mut text = Vec::new();
    // One byte more than a full block, so a longer block is seen as such.
    let mut inbuf = vec![0u8; usize::from(n.blksize) + 5];
    let retries = tftp.config.tftp_retries;
    if sock.send(&first).await.is_err() {
        return Err((Outcome::AbortedByClient, String::new()));
    }
    let mut timer = pace::LazyTimer::new(n.timeout);
    loop {
        let deadline = tokio::time::Instant::now() + n.timeout;
        let got = timer.recv(sock, &mut inbuf, deadline).await;
        let len = match got {
            Err(_) => match rx.on_timeout(retries) {
                None => return Err((Outcome::Timeout, String::new())),
                Some(0) => {
                    let _ = sock.send(&first).await;
                    continue;
                }
                Some(b) => {
                    let _ = sock.send(&packet::ack(b)).await;
                    continue;
                }
            },
            Ok(Err(e)) => return Err((Outcome::AbortedByClient, e.to_string())),
            Ok(Ok(len)) => len,
        };
        let (block, data) = match packet::parse(&inbuf[..len]) {
            Ok(Packet::Data { block, data }) => (block, data),
            Ok(Packet::Error { message, .. }) => {
                return Err((Outcome::AbortedByClient, format!("client said: {message}")));
            }
            _ => continue,
        };
        match rx.on_data(block, data.len()) {
            Got::Store { ack, last } => {
                let bytes = match &mut netascii {
                    Some(d) => {
                        d.feed(data, &mut text);
                        if last {
                            text.extend_from_slice(d.finish());
                        }
                        &text[..]
                    }
                    None => data,
                };
                let mut wrote = out.write_all(bytes).await;
                record.sent = rx.bytes();
                if last && wrote.is_ok() {
                    wrote = put_in_place(&mut out, &partial.path, &target).await;
                    partial.kept = wrote.is_ok();
                }
                if let Err(e) = wrote {
                    let _ = sock
                        .send(&packet::error(
                            packet::ERR_UNDEFINED,
                            "cannot store the file",
                        ))
                        .await;
                    return Err((Outcome::Failed, e.to_string()));
                }
                if let Some(b) = ack {
                    let _ = sock.send(&packet::ack(b)).await;
                }
                if last {
                    return Ok((rx, n.timeout));
                }
            }
            Got::Ack(b) => {
                let _ = sock.send(&packet::ack(b)).await;
            }
            Got::Ignore => {}
            Got::TooBig => {
                let why = format!("uploads are limited to {max} bytes");
                let _ = sock.send(&packet::error(packet::ERR_DISK_FULL, &why)).await;
                return Err((Outcome::Refused, why));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names() {
        let phone: Mac = "00:04:f2:18:de:ce".parse().expect("mac");
        let folder = "/var/lib/dialtone/uploads";
        assert_eq!(
            target("logs\\0004f218dece-app.log", folder, Some(phone), false),
            Ok(vec!["logs".to_string(), "0004f218dece-app.log".to_string()])
        );
        assert_eq!(
            target("/var/lib/dialtone/uploads/a.log", folder, None, false),
            Ok(vec!["a.log".to_string()])
        );
        assert_eq!(
            target("boot.log", folder, None, false),
            Ok(vec!["boot.log".into()])
        );
        for (raw, mac, why) in [
            ("../etc/passwd", Some(phone), "`..`"),
            ("/etc/passwd", Some(phone), "absolute"),
            (".x.part", Some(phone), "`.`"),
            ("logs/.hidden/a.log", Some(phone), "`.`"),
            ("00908f123456-app.log", Some(phone), "00:90:8f:12:34:56"),
            ("0004f218dece-app.log", None, "not that phone"),
        ] {
            let e = target(raw, folder, mac, false).expect_err(raw);
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn the_announced_size_is_read_from_tsize() {
        let o = |v: &str| {
            vec![
                ("blksize".to_string(), "1468".to_string()),
                ("tsize".into(), v.into()),
            ]
        };
        assert_eq!(announced(&o("1234")), Some(1234));
        assert_eq!(announced(&o("x")), None);
        assert_eq!(announced(&[]), None);
    }

    #[test]
    fn partial_files_are_beside_the_target_and_removed_unless_kept() {
        let dir = std::env::temp_dir().join(format!("dialtone-upload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let parts = vec!["logs".to_string(), "a.log".to_string()];
        let (target, partial, _f) = open_partial(&dir, &parts).expect("open");
        assert_eq!(target, dir.join("logs/a.log"));
        assert!(partial.path.starts_with(dir.join("logs")));
        assert!(partial.path.exists());
        let p = partial.path.clone();
        drop(partial);
        assert!(!p.exists());
        // A link in the way is not followed.
        std::os::unix::fs::symlink("/tmp", dir.join("out")).expect("link");
        let e = open_partial(&dir, &["out".to_string(), "x".to_string()]).expect_err("link");
        assert!(e.to_string().contains("not a folder"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
