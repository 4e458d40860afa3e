//! The password of a PostgreSQL study, found as libpq finds it: the URL's
//! own, else `PGPASSWORD`, else the first matching line of the password
//! file (`PGPASSFILE`, else `~/.pgpass`).
//!
//! A password file line is `hostname:port:database:username:password`;
//! each of the first four fields matches literally or is `*` (anything),
//! and `\:` and `\\` stand for a colon and a backslash. Lines starting with
//! `#` are comments. As in libpq, a file that its group or others can read
//! is ignored (with a warning), and a connection through a Unix socket in
//! the default socket folder matches the host name `localhost`; through any
//! other socket folder, that folder's path.

use std::path::{Path, PathBuf};

/// The socket folder that Debian's libpq (and so `psql`) connects to by
/// default; a connection through it matches `localhost` in the password
/// file.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// What a password is looked up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host name, or the socket folder of a Unix-socket connection.
    pub host: &'a str,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: &'a str,
    /// The user.
    pub user: &'a str,
}

/// The password for `target` from the environment: `PGPASSWORD`, else the
/// password file. Warnings (a password file others can read) go to
/// standard error.
pub fn from_environment(target: &Target<'_>) -> Option<String> {
    if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Some(p.to_string_lossy().into_owned());
    }
    let file = password_file()?;
    match read_private(&file) {
        Ok(Some(text)) => lookup(&text, target),
        Ok(None) => {
            eprintln!(
                "warning: password file {} has group or world access and is ignored (as libpq \
                 does); make it private with `chmod 0600 {}`",
                file.display(),
                file.display()
            );
            None
        }
        Err(_) => None,
    }
}

/// The password file: `PGPASSFILE`, else `~/.pgpass`.
fn password_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".pgpass"))
}

/// The file's text, or `None` when its group or others may read or write
/// it (libpq ignores such a file).
fn read_private(path: &Path) -> std::io::Result<Option<String>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Ok(None);
        }
    }
    std::fs::read_to_string(path).map(Some)
}

/// The host name a connection matches in the password file: `localhost`
/// for the default socket folder, else the host (or socket folder) itself.
pub fn match_host(host: &str) -> &str {
    if host.trim_end_matches('/') == DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        host
    }
}

/// The password of the first line of a password file's `text` that matches
/// `target`.
pub fn lookup(text: &str, target: &Target<'_>) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [match_host(target.host), &port, target.database, target.user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(fields)
        .find(|f| {
            f[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// The five fields of a password file line, unescaped (`\:` is a colon,
/// `\\` a backslash); `None` for a line with fewer than five. Like libpq,
/// the password is the rest of the line after the fourth separator.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(5);
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if out.len() < 4 => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(host: &'a str, port: u16, database: &'a str, user: &'a str) -> Target<'a> {
        Target {
            host,
            port,
            database,
            user,
        }
    }

    #[test]
    fn the_first_matching_line_wins_and_stars_match_anything() {
        let file = "# comment\n\
                    db.example:5432:pf:alice:first\n\
                    *:5432:pf:alice:second\n\
                    *:*:*:*:fallback\n";
        let t = target("db.example", 5432, "pf", "alice");
        assert_eq!(lookup(file, &t).as_deref(), Some("first"));
        let t = target("other", 5432, "pf", "alice");
        assert_eq!(lookup(file, &t).as_deref(), Some("second"));
        let t = target("other", 6543, "pf", "bob");
        assert_eq!(lookup(file, &t).as_deref(), Some("fallback"));
        assert_eq!(
            lookup("db:5432:pf:alice:x\n", &target("db", 5433, "pf", "alice")),
            None
        );
    }

    #[test]
    fn escaped_colons_and_backslashes_are_part_of_a_field() {
        let file = r"host\:8:5432:d\\b:u:pa\:ss\\word";
        let t = target("host:8", 5432, r"d\b", "u");
        assert_eq!(lookup(file, &t).as_deref(), Some(r"pa:ss\word"));
        // A line with fewer than five fields matches nothing.
        assert_eq!(lookup("h:5432:d:u", &target("h", 5432, "d", "u")), None);
    }

    #[test]
    fn the_default_socket_folder_matches_localhost_and_others_their_path() {
        let file = "localhost:5432:pf:u:local\n/tmp/pg:5432:pf:u:custom\n";
        let t = target(DEFAULT_SOCKET_DIR, 5432, "pf", "u");
        assert_eq!(lookup(file, &t).as_deref(), Some("local"));
        let t = target("/tmp/pg", 5432, "pf", "u");
        assert_eq!(lookup(file, &t).as_deref(), Some("custom"));
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_private(&path).unwrap(), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_private(&path).unwrap().as_deref(),
            Some("*:*:*:*:secret\n")
        );
    }
}
