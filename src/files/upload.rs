//! The upload folder (`[files] upload`), whichever protocol writes to it
//! (TFTP write requests, HTTP PUT): the name rules, and a hidden partial
//! file beside the target renamed over it only when the whole upload has
//! arrived, so a broken upload never replaces a good file; the partial file
//! is removed whatever ends the transfer. Uploads are never served: the
//! folder lies outside the served tree.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncWriteExt, BufWriter};

use crate::files::path::{self, mac_in_name};
use crate::units::Mac;

/// Where an upload named `raw` goes inside the upload folder, as components,
/// or why it is refused: the name rules of reads (no `..`, NUL, absolute
/// names outside the folder), no hidden names (partial files are hidden),
/// and a name that carries a MAC only from that MAC's phone. No I/O.
/// `http`: `raw` is a decoded HTTP path (its leading `/` is the folder).
pub fn target(
    raw: &str,
    folder: &str,
    client: Option<Mac>,
    http: bool,
) -> Result<Vec<String>, String> {
    let parts = path::components(raw, folder, http).map_err(|e| e.to_string())?;
    if parts.iter().any(|p| p.starts_with('.')) {
        return Err("names starting with `.` are refused".into());
    }
    let name = parts.last().map(String::as_str).unwrap_or_default();
    if let Some((_, owner, _)) = mac_in_name(name)
        && client != Some(owner)
    {
        return Err(format!(
            "the name carries {owner}, and the sender is not that phone"
        ));
    }
    Ok(parts)
}

/// Removes the partial file unless the upload was put in place.
#[derive(Debug)]
pub struct Partial {
    pub path: PathBuf,
    pub kept: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes the folders of `parts` inside `folder` (not following links) and
/// creates a new partial file beside the target. Blocking.
pub fn open_partial(
    folder: &Path,
    parts: &[String],
) -> io::Result<(PathBuf, Partial, std::fs::File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut dir = folder.to_path_buf();
    let (name, dirs) = parts
        .split_last()
        .ok_or_else(|| io::Error::other("empty name"))?;
    for d in dirs {
        dir.push(d);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a folder",
                    dir.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    let target = dir.join(name);
    if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
        return Err(io::Error::other(format!(
            "{} exists and is not a plain file",
            target.display()
        )));
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let partial = dir.join(format!(".{name}.{}-{n}.part", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)?;
    Ok((
        target,
        Partial {
            path: partial,
            kept: false,
        },
        file,
    ))
}

/// Flushes and syncs the partial file and renames it over the target.
pub async fn put_in_place(
    out: &mut BufWriter<tokio::fs::File>,
    partial: &Path,
    target: &Path,
) -> io::Result<()> {
    out.flush().await?;
    out.get_ref().sync_all().await?;
    tokio::fs::rename(partial, target).await?;
    let target = target.to_path_buf();
    tokio::task::spawn_blocking(move || crate::statefile::sync_folder_of(&target))
        .await
        .map_err(io::Error::other)?
}
