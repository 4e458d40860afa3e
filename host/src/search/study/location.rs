//! Where a PostgreSQL study is: the `--study postgres://…?study=NAME` URL,
//! read by the `postgres` crate after pf's own `study=` parameter is taken
//! out, with libpq's defaults and password lookup ([`super::pgpass`]), and
//! the errors of a connection that fails, each naming the URL without its
//! password and saying what to do.

use super::pgpass;
use anyhow::{anyhow, bail, Context, Result};
use postgres::config::Host;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use std::str::FromStr;
use std::time::Duration;

/// The longest study name (`study=NAME`) pf accepts.
pub const MAX_STUDY_NAME: usize = 200;

/// A study in a PostgreSQL database, as a `--study` URL names it.
#[derive(Clone)]
pub struct PgLocation {
    /// The connection settings (the URL without `study=`, with pf's
    /// defaults and the password filled in).
    pub(super) config: postgres::Config,
    /// The study's name.
    pub(super) study: String,
    /// The URL as given, with any password replaced by `***`.
    pub(super) shown: String,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of debug output too.
        f.debug_struct("PgLocation")
            .field("url", &self.shown)
            .finish()
    }
}

impl PgLocation {
    /// Reads a `postgres://` or `postgresql://` URL with a `study=NAME`
    /// query parameter; `None` when `arg` is not such a URL (a path).
    pub fn parse(arg: &str) -> Result<Option<PgLocation>> {
        let lower = arg.get(..13).unwrap_or(arg).to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            return Ok(None);
        }
        let shown = redact(arg);
        let (base, query) = arg.split_once('?').unwrap_or((arg, ""));
        let mut study = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("study", name)) => study = Some(decode(name)),
                _ => rest.push(pair),
            }
        }
        let Some(study) = study else {
            bail!(
                "--study {shown}: the URL names no study; add `study=NAME` to its query, as in \
                 postgres://USER@HOST/DATABASE?study=NAME (one database holds many studies, \
                 each under its name)"
            );
        };
        check_name(&study).with_context(|| format!("--study {shown}"))?;
        let url = match rest.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", rest.join("&")),
        };
        let mut config = postgres::Config::from_str(&url).map_err(|e| {
            anyhow!(
                "--study {shown}: not a valid PostgreSQL URL ({e}); write it as \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?study=NAME (a Unix socket \
                 folder as `host=/folder` in the query, or percent-encoded as the host)"
            )
        })?;
        fill_defaults(&mut config);
        if config.get_password().is_none() {
            let (host, port) = endpoint_of(&config);
            let target = pgpass::Target {
                host: &host,
                port,
                database: config.get_dbname().unwrap_or_default(),
                user: config.get_user().unwrap_or_default(),
            };
            if let Some(p) = pgpass::from_environment(&target) {
                config.password(p);
            }
        }
        Ok(Some(PgLocation {
            config,
            study,
            shown,
        }))
    }

    /// The URL as given, without its password.
    pub fn display(&self) -> String {
        self.shown.clone()
    }

    /// The study's name (`study=`).
    pub fn study(&self) -> &str {
        &self.study
    }

    /// The database's name.
    pub(super) fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// Connects, or explains why not: the URL, the cause and what to do.
    pub fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| connect_error(self, e))
    }
}

/// A study name pf accepts: printable, at most [`MAX_STUDY_NAME`]
/// characters.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("`study=` is empty: give the study a name, as in ?study=resnet-halved");
    }
    if name.chars().count() > MAX_STUDY_NAME || name.chars().any(char::is_control) {
        bail!("the study name is not usable: give at most {MAX_STUDY_NAME} printable characters");
    }
    Ok(())
}

/// `s` with `%XX` escapes (and `+` as in a query) decoded; undecodable
/// bytes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with the password of its user part and any `password=` query
/// parameter replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// libpq's defaults for what the URL leaves out: the user (`PGUSER`, else
/// the login name), the database (`PGDATABASE`, else the user's name), the
/// host (`PGHOST`, else the default socket folder when it exists, else
/// localhost) and the port (`PGPORT`, else 5432); and a 10 s limit on each
/// connection attempt, so that an unreachable server is reported.
fn fill_defaults(config: &mut postgres::Config) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").into());
        config.dbname(&db);
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) if h.starts_with('/') => {
                config.host_path(h);
            }
            Some(h) => {
                config.host(&h);
            }
            None if std::path::Path::new(pgpass::DEFAULT_SOCKET_DIR).is_dir() => {
                config.host_path(pgpass::DEFAULT_SOCKET_DIR);
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        let port = env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
        config.port(port);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("pf");
    }
}

/// The first host (or socket folder) and port the connection tries.
fn endpoint_of(config: &postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// Why a connection failed, with what to do.
fn connect_error(at: &PgLocation, e: postgres::Error) -> anyhow::Error {
    let (host, port) = endpoint_of(&at.config);
    let user = at.config.get_user().unwrap_or_default();
    let db = at.database();
    let server = match host.starts_with('/') {
        true => format!("the Unix socket in {host} (port {port})"),
        false => format!("{host}:{port}"),
    };
    let cause = if let Some(db_error) = e.as_db_error() {
        match db_error.code() {
            c if *c == SqlState::INVALID_CATALOG_NAME => format!(
                "database `{db}` does not exist on {server}: create it (`createdb {db}`) or fix \
                 the database in the URL"
            ),
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                format!(
                    "authentication failed for user `{user}` on {server}: check the user and \
                     the password (in the URL, PGPASSWORD or ~/.pgpass) and the server's \
                     pg_hba.conf"
                )
            }
            _ => format!("the server refused the connection: {}", db_error.message()),
        }
    } else if let Some(io) = io_error(&e) {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => format!(
                "nothing accepts connections at {server} (connection refused): is the \
                 PostgreSQL server running and listening there? Check the host and port in \
                 the URL"
            ),
            _ => format!("cannot reach {server}: {io}"),
        }
    } else if e.to_string().contains("password missing") {
        format!(
            "the server asks for a password for user `{user}` and none was given: put it in \
             PGPASSWORD or ~/.pgpass (mode 0600), or in the URL"
        )
    } else if e.to_string().contains("timed out") {
        format!("no answer from {server} within 10 s: check the host and the network")
    } else {
        format!("cannot connect to {server}: {e}")
    };
    anyhow!("study {}: {cause}", at.shown)
}

/// The I/O error under a connection error, if that is what it was.
fn io_error(e: &postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_study_name_is_taken_out_of_the_url_and_passwords_are_never_shown() {
        let at = PgLocation::parse(
            "postgres://alice:s3cret@db.example:6543/pf?sslmode=disable&study=runs%2Fa+b",
        )
        .unwrap()
        .unwrap();
        assert_eq!(at.study(), "runs/a b");
        assert_eq!(at.config.get_dbname(), Some("pf"));
        assert_eq!(at.config.get_user(), Some("alice"));
        assert_eq!(at.config.get_ports(), &[6543]);
        assert_eq!(at.config.get_password(), Some(&b"s3cret"[..]));
        assert!(!at.display().contains("s3cret"), "{}", at.display());
        assert!(!format!("{at:?}").contains("s3cret"));
        assert_eq!(
            redact("postgresql://u@h/d?password=x&study=s"),
            "postgresql://u@h/d?password=***&study=s"
        );
    }

    #[test]
    fn a_unix_socket_folder_is_read_from_the_query_or_an_encoded_host() {
        for url in [
            "postgres:///db?host=/tmp/pg%20sock&user=u&study=s",
            "postgres://u@%2Ftmp%2Fpg%20sock/db?study=s",
        ] {
            let at = PgLocation::parse(url).unwrap().unwrap();
            assert_eq!(
                endpoint_of(&at.config).0,
                "/tmp/pg sock",
                "{url}: {:?}",
                at.config.get_hosts()
            );
        }
    }

    #[test]
    fn paths_are_not_urls_and_bad_urls_say_how_to_write_one() {
        assert!(PgLocation::parse("runs/postgres.db").unwrap().is_none());
        let missing = PgLocation::parse("postgres://u:pw@h/db").unwrap_err();
        assert!(missing.to_string().contains("study=NAME"), "{missing}");
        assert!(!missing.to_string().contains("pw@"), "{missing}");
        let bad = PgLocation::parse("postgres://u:pw@h:notaport/db?study=s").unwrap_err();
        let bad = format!("{bad:#}");
        assert!(bad.contains("not a valid PostgreSQL URL"), "{bad}");
        assert!(!bad.contains(":pw@"), "{bad}");
        assert!(PgLocation::parse("postgres://h/db?study=").is_err());
    }
}
