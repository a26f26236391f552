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
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&snapshot).map_err(io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}
