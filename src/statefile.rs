//! State that `serve` keeps in memory and writes to a JSON file in the state
//! directory when it has changed (the file counters, the phones seen), read
//! back at start.

use std::io;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value and whether it changed since it was last written.
#[derive(Debug, Default)]
pub struct JsonState<T> {
    inner: Mutex<(T, bool)>,
}

impl<T: Serialize + DeserializeOwned + Clone + Default> JsonState<T> {
    /// The value written at `path` before (the default when there is no
    /// file); a file that cannot be read or parsed is an error naming it.
    pub fn load(path: &Path) -> Result<JsonState<T>, String> {
        let value = match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(JsonState {
            inner: Mutex::new((value, false)),
        })
    }

    /// Changes the value (marking it to be written).
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g.0);
            g.1 = true;
        }
    }

    /// Reads the value without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> Option<R>) -> Option<R> {
        f(&self.inner.lock().ok()?.0)
    }

    pub fn snapshot(&self) -> T {
        self.inner.lock().map(|g| g.0.clone()).unwrap_or_default()
    }

    /// Writes the value to `path` (a temporary file renamed over it) if it
    /// changed since the last write.
    pub fn save_if_changed(&self, path: &Path) -> io::Result<()> {
        let snapshot = match self.inner.lock() {
            Ok(mut g) if g.1 => {
                g.1 = false;
                g.0.clone()
            }
            _ => return Ok(()),
        };
        let text = serde_json::to_string_pretty(&snapshot).map_err(io::Error::other)?;
        let written = replace(path, text.as_bytes(), 0o644);
        if written.is_err() {
            // Not on disk: written again at the next save.
            if let Ok(mut g) = self.inner.lock() {
                g.1 = true;
            }
        }
        written
    }
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment
/// leaves the old file or the new one whole, never a mix: written to a
/// temporary file beside it (created with `mode`), synced, renamed over
/// it, and the folder synced so the rename itself is on disk. A temporary
/// file a crash left behind is overwritten by the next write.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} is not a file name", path.display())))?
        .to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_folder_of(path)
}

/// Syncs the folder holding `path`, so a rename or a new name in it is on
/// disk.
pub fn sync_folder_of(path: &Path) -> io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file_and_the_next_write_goes_through() {
        let dir = std::env::temp_dir().join(format!("dialtone-statefile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("counters.json");
        let state: JsonState<std::collections::BTreeMap<String, u64>> =
            JsonState::load(&path).unwrap();
        state.update(|m| {
            m.insert("a".into(), 1);
        });
        state.save_if_changed(&path).unwrap();
        // A crash in the middle of the next save: half a temporary file.
        std::fs::write(dir.join("counters.json.tmp"), "{\"a\": 2, \"b").unwrap();
        let again: JsonState<std::collections::BTreeMap<String, u64>> =
            JsonState::load(&path).unwrap();
        assert_eq!(again.snapshot().get("a"), Some(&1));
        again.update(|m| {
            m.insert("b".into(), 3);
        });
        again.save_if_changed(&path).unwrap();
        let last: JsonState<std::collections::BTreeMap<String, u64>> =
            JsonState::load(&path).unwrap();
        assert_eq!(last.snapshot().len(), 2);
        assert!(!dir.join("counters.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_save_is_tried_again() {
        let dir = std::env::temp_dir().join(format!("dialtone-statefail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("seen.json");
        let state: JsonState<Vec<u32>> = JsonState::load(&path).unwrap();
        state.update(|v| v.push(7));
        // The folder does not exist yet: the save fails and stays pending.
        assert!(state.save_if_changed(&path).is_err());
        std::fs::create_dir_all(&dir).unwrap();
        state.save_if_changed(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path)
                .unwrap()
                .replace(char::is_whitespace, ""),
            "[7]"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
