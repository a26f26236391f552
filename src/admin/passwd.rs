//! `dialtone passwd`: sets a user's password in the admin password file
//! (`user:$argon2id$...` lines), written whole or not at all.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// Reads one line from standard input; on a terminal, without echo.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let saved = if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn echo off")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The file's text with `user`'s line set to `hash` (added if new).
pub fn set_line(text: &str, user: &str, hash: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for l in text.lines() {
        if l.split_once(':').is_some_and(|(u, _)| u == user) {
            if !done {
                out.push_str(&format!("{user}:{hash}\n"));
                done = true;
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !done {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    out
}

pub fn run(file: &Path, user: &str) -> anyhow::Result<()> {
    if user.is_empty() || user.contains([':', '\n', ' ']) {
        bail!("the user name must be non-empty, without ':' or spaces");
    }
    let password = read_password(&format!("New password for {user}: "))?;
    if std::io::stdin().is_terminal() {
        let again = read_password("Again: ")?;
        if again != password {
            bail!("the passwords differ; nothing changed");
        }
    }
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters; nothing changed");
    }
    let hash = super::auth::hash(&password)?;
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", file.display())),
    };
    crate::statefile::replace(file, set_line(&text, user, &hash).as_bytes(), 0o640)
        .with_context(|| format!("{}: cannot write", file.display()))?;
    // The service's user reads it: keep the folder's group when run as root.
    if let Some(dir) = file.parent()
        && let Ok(meta) = std::fs::metadata(dir)
    {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(file, None, Some(meta.gid()));
    }
    eprintln!(
        "{}: password for {user} set. Name the file in [admin] password_file and reload.",
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_users_line_is_replaced_and_others_kept() {
        let t = "# admins\nalice:$argon2id$old\nbob:$argon2id$b\n";
        let out = super::set_line(t, "alice", "$argon2id$new");
        assert_eq!(out, "# admins\nalice:$argon2id$new\nbob:$argon2id$b\n");
        assert_eq!(super::set_line("", "carol", "h"), "carol:h\n");
    }
}
