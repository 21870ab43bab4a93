//! Daemon mode's configuration as plain Rust: `WSGIDaemonProcess` groups,
//! the process group an application is delegated to (`WSGIProcessGroup`,
//! `process-group=`), `WSGISocketPrefix`, and the checks that need the
//! whole configuration (a named group must exist and be visible from where
//! it is named). No Apache calls: users, groups and directories are looked
//! up through [`Lookups`], so every rule is unit-tested with fakes. The glue
//! that feeds directives in and runs the final check is in directives.rs.

use crate::config::{self, OptimizeLevel};
use crate::daemon_lifecycle::{self, Lifecycle};
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

const DIRECTIVE: &str = "WSGIDaemonProcess";

/// mod_wsgi's defaults, which configurations written for it rely on.
pub const DEFAULT_PROCESSES: u32 = 1;
pub const DEFAULT_THREADS: u32 = 15;
pub const DEFAULT_LISTEN_BACKLOG: u32 = 100;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// What `header_buffer_size == 0` stands for: the largest response head
/// (status line and headers) a daemon may send, mod_wsgi's default.
pub const DEFAULT_HEADER_BUFFER_SIZE: u32 = 32768;
/// The socket prefix when `WSGISocketPrefix` is not given, relative to
/// Apache's DefaultRuntimeDir (resolved with ap_runtime_dir_relative).
// Its user, daemon::groups, is not built for the unit tests.
#[cfg_attr(test, allow(dead_code))]
pub const DEFAULT_SOCKET_PREFIX: &str = "wsgi";
/// The longest `WSGISocketPrefix` accepted: a UNIX socket path holds at
/// most 107 bytes, and the runtime appends a suffix of at most
/// `107 - SOCKET_PREFIX_MAX_LEN` bytes (mod_wsgi's is `.PID.N.sock`).
pub const SOCKET_PREFIX_MAX_LEN: usize = 80;

const MAX_PROCESSES: u64 = 128;
const MAX_THREADS: u64 = 1000;
const MAX_SECONDS: u64 = 86400;
const MAX_BUFFER_SIZE: u64 = 1 << 30;

/// One `WSGIDaemonProcess` line: a named group of daemon processes.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonGroup {
    pub name: String,
    /// `processes=N`, 1 to 128.
    pub processes: u32,
    /// `threads=N`, worker threads per process, 1 to 1000.
    pub threads: u32,
    /// `user=NAME` or `user=#UID`; None: Apache's own `User`.
    pub user: Option<DaemonUser>,
    /// `group=NAME` or `group=#GID`; None: the primary group of `user`
    /// when it is given, else Apache's `Group`.
    pub group: Option<DaemonGroupId>,
    /// `supplementary-groups=a,b` (names or `#GID`s), in the order given.
    pub supplementary_groups: Vec<u32>,
    /// The directory the daemons start in: `home=DIR` (checked to be an
    /// existing directory), or, with `user=` and no `home=`, that user's
    /// home directory, or `/` when it does not exist (see `home_note`).
    /// None (neither option given): stay in Apache's working directory,
    /// as mod_wsgi does.
    pub home: Option<String>,
    /// `python-home=DIR`: overrides `WSGIPythonHome` for this group.
    pub python_home: Option<String>,
    /// `python-path=a:b`: added to `sys.path` (absolute directories).
    pub python_path: Vec<String>,
    /// `display-name=TEXT`, the process title; see [`DaemonGroup::title`].
    pub display_name: Option<String>,
    /// `umask=0007`; None: inherited from Apache.
    pub umask: Option<u32>,
    /// `lang=` (LANG) and `locale=` (LC_ALL).
    pub lang: Option<String>,
    pub locale: Option<String>,
    /// `listen-backlog=N` of the group's socket, default 100.
    pub listen_backlog: u32,
    /// `socket-user=NAME` or `#UID`: who may connect to the group's
    /// socket; None: Apache's `User`.
    pub socket_user: Option<u32>,
    /// `connect-timeout=SECONDS`: how long an Apache child keeps trying to
    /// reach the group before answering 503. Default 15 s.
    pub connect_timeout: Duration,
    /// `socket-timeout=SECONDS` for each read and write on the connection;
    /// None: Apache's `Timeout`.
    pub socket_timeout: Option<Duration>,
    /// `header-buffer-size=` in bytes; 0 means
    /// [`DEFAULT_HEADER_BUFFER_SIZE`] (32768). At least 8192 when given.
    pub header_buffer_size: u32,
    /// `response-buffer-size=` in bytes (0 when not given; mod_wsgi's
    /// default is 65536). At least 65536 when given. Checked for
    /// configurations written for mod_wsgi; responses are streamed, so it
    /// has no effect.
    pub response_buffer_size: u32,
    /// `send-buffer-size=` (daemon to Apache) and `receive-buffer-size=`
    /// (Apache to daemon), SO_SNDBUF/SO_RCVBUF in bytes; 0 leaves the
    /// operating system's default. At least 512 when given.
    pub send_buffer_size: u32,
    pub receive_buffer_size: u32,
    /// `python-optimize=0|1|2` (an option of ours): overrides
    /// `WSGIPythonOptimize` for this group.
    pub python_optimize: Option<OptimizeLevel>,
    /// Recycling, timeouts and limits (daemon_lifecycle.rs).
    pub lifecycle: Lifecycle,
    /// None: defined in the main server, usable from every host;
    /// Some(ServerName): defined in that `<VirtualHost>`, usable only from
    /// hosts with that ServerName. Set once the whole configuration is read.
    pub defined_in: Option<String>,
    /// A warning to log when the group's daemons start: the default home
    /// directory did not exist and `/` is used instead.
    pub home_note: Option<String>,
}

/// A daemon user, as the user database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUser {
    pub name: String,
    pub uid: u32,
    /// The user's primary group.
    pub gid: u32,
    pub home: String,
}

/// A daemon's primary group. `name` is `#GID` for a numeric group the
/// group database does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonGroupId {
    pub name: String,
    pub gid: u32,
}

impl DaemonGroup {
    /// A group with every option at its default.
    pub fn with_defaults(name: &str) -> DaemonGroup {
        DaemonGroup {
            name: name.to_owned(),
            processes: DEFAULT_PROCESSES,
            threads: DEFAULT_THREADS,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            home: None,
            python_home: None,
            python_path: Vec::new(),
            display_name: None,
            umask: None,
            lang: None,
            locale: None,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            socket_user: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            socket_timeout: None,
            header_buffer_size: 0,
            response_buffer_size: 0,
            send_buffer_size: 0,
            receive_buffer_size: 0,
            python_optimize: None,
            lifecycle: Lifecycle::default(),
            defined_in: None,
            home_note: None,
        }
    }

    /// The uid and primary gid the group's daemons run as, given
    /// Apache's `User` and `Group`.
    #[cfg_attr(test, allow(dead_code))] // used by pycache_setup, left out of the test build
    pub fn identity(&self, apache_uid: u32, apache_gid: u32) -> (u32, u32) {
        let uid = self.user.as_ref().map_or(apache_uid, |u| u.uid);
        let gid = match (&self.group, &self.user) {
            (Some(g), _) => g.gid,
            (None, Some(u)) => u.gid,
            (None, None) => apache_gid,
        };
        (uid, gid)
    }

    /// The process title to set, if any: `display-name` with `%{GROUP}`
    /// replaced by `(wsgi:NAME)`, which is what `ps` shows for mod_wsgi.
    pub fn title(&self) -> Option<String> {
        let wsgi_name = format!("(wsgi:{})", self.name);
        self.display_name.as_ref().map(|d| d.replace("%{GROUP}", &wsgi_name))
    }

    /// Whether a request served by the host named `server_hostname` (its
    /// ServerName) may be delegated to this group: a group defined in the
    /// main server serves every host, one defined in a `<VirtualHost>`
    /// only hosts with the same ServerName, as with mod_wsgi.
    pub fn visible_from(&self, server_hostname: &str) -> bool {
        self.defined_in.as_deref().is_none_or(|host| host.eq_ignore_ascii_case(server_hostname))
    }

    pub fn effective_header_buffer_size(&self) -> u32 {
        if self.header_buffer_size == 0 {
            DEFAULT_HEADER_BUFFER_SIZE
        } else {
            self.header_buffer_size
        }
    }
}

/// The user and group databases and the file system, as far as the
/// configuration needs them. The glue answers with getpwnam/getgrnam and
/// stat; unit tests with fakes.
pub trait Lookups {
    fn user_by_name(&self, name: &str) -> Option<DaemonUser>;
    fn user_by_uid(&self, uid: u32) -> Option<DaemonUser>;
    fn group_by_name(&self, name: &str) -> Option<DaemonGroupId>;
    fn group_by_gid(&self, gid: u32) -> Option<DaemonGroupId>;
    fn is_dir(&self, path: &str) -> bool;
    /// Whether this process may create files in the directory `path`; the
    /// reason when it may not.
    fn may_create_in(&self, path: &str) -> Result<(), String>;
}

/// The options this module implements.
const SUPPORTED_OPTIONS: [&str; 21] = [
    "processes",
    "threads",
    "user",
    "group",
    "supplementary-groups",
    "home",
    "python-home",
    "python-path",
    "display-name",
    "umask",
    "lang",
    "locale",
    "listen-backlog",
    "socket-user",
    "connect-timeout",
    "socket-timeout",
    "header-buffer-size",
    "response-buffer-size",
    "send-buffer-size",
    "receive-buffer-size",
    "python-optimize",
];

/// The other mod_wsgi (4.9 and 6.x) options this module does not have.
const OTHER_MOD_WSGI_OPTIONS: [&str; 8] = [
    "chroot",
    "script-user",
    "script-group",
    "python-eggs",
    "switch-interval",
    "server-metrics",
    "newrelic-config-file",
    "newrelic-environment",
];

/// Parses the argument string of a `WSGIDaemonProcess` line: the group's
/// name, then `option=value` pairs, with values quoted as Apache quotes
/// directive arguments (`display-name="my site"`), as mod_wsgi reads them.
/// `defined_in` is left None; the whole-configuration check sets it.
pub fn parse_daemon_process(args: &str, lookups: &dyn Lookups) -> Result<DaemonGroup, String> {
    let mut rest = args;
    let name = next_word(&mut rest);
    check_group_name(&name)?;
    let shown = name.escape_default().to_string();
    let mut options: Vec<(String, String)> = Vec::new();
    while !rest.is_empty() {
        let (key, value) = next_option(&mut rest)
            .map_err(|word| format!("{DIRECTIVE} {shown}: '{}' is not of the form option=value", word.escape_default()))?;
        check_option_name(&shown, &key)?;
        if options.iter().any(|(k, _)| *k == key) {
            return Err(format!("{DIRECTIVE} {shown}: option {key} is given twice"));
        }
        options.push((key, value));
    }

    let mut group = DaemonGroup::with_defaults(&name);
    for (key, value) in &options {
        let invalid = |expected: &str| {
            format!("{DIRECTIVE} {shown}: invalid value '{}' for {key}; {expected}", value.escape_default())
        };
        let number = |range: RangeInclusive<u64>, expected: &str| whole_number(value, range).ok_or_else(|| invalid(expected));
        let seconds = || {
            number(1..=MAX_SECONDS, &format!("expected a whole number of seconds from 1 to {MAX_SECONDS}"))
                .map(Duration::from_secs)
        };
        let buffer = |minimum: u64, default: &str| {
            number(0..=MAX_BUFFER_SIZE, "").ok().filter(|&n| n == 0 || n >= minimum).map(|n| n as u32).ok_or_else(|| {
                invalid(&format!(
                    "expected 0 ({default}) or a whole number of bytes from {minimum} to {MAX_BUFFER_SIZE}"
                ))
            })
        };
        let text = |what: &str| if value.is_empty() { Err(invalid(&format!("expected {what}"))) } else { Ok(value.clone()) };
        match key.as_str() {
            "processes" => {
                group.processes =
                    number(1..=MAX_PROCESSES, &format!("expected a whole number from 1 to {MAX_PROCESSES}"))? as u32
            }
            "threads" => {
                group.threads = number(1..=MAX_THREADS, &format!("expected a whole number from 1 to {MAX_THREADS}"))? as u32
            }
            "user" => group.user = Some(resolve_user(value, lookups).map_err(|why| invalid(&why))?),
            "group" => group.group = Some(resolve_group(value, lookups).map_err(|why| invalid(&why))?),
            "supplementary-groups" => {
                let gid = |item: &str| match item {
                    "" => Err("expected group names or #GIDs separated by commas".to_owned()),
                    _ => resolve_group(item, lookups).map(|g| g.gid),
                };
                group.supplementary_groups =
                    value.split(',').map(gid).collect::<Result<_, _>>().map_err(|why| invalid(&why))?
            }
            "home" => {
                if !value.starts_with('/') {
                    return Err(invalid("expected an absolute path"));
                }
                if !lookups.is_dir(value) {
                    return Err(invalid("it is not an existing directory"));
                }
                group.home = Some(trim_trailing_slashes(value));
            }
            "python-home" => {
                group.python_home = Some(config::parse_python_home(value).map_err(|_| invalid("expected an absolute path"))?)
            }
            "python-path" => {
                group.python_path = config::parse_python_path(value)
                    .map_err(|_| invalid("expected absolute directories separated by ':'"))?
            }
            "display-name" => group.display_name = Some(text("a process title, such as %{GROUP}")?),
            "umask" => group.umask = Some(parse_umask(value).ok_or_else(|| invalid("expected an octal number from 0000 to 0777, such as 0007"))?),
            "lang" | "locale" => {
                let locale = Some(text("a locale name, such as C.UTF-8")?);
                if key == "lang" {
                    group.lang = locale;
                } else {
                    group.locale = locale;
                }
            }
            "listen-backlog" => {
                group.listen_backlog = number(1..=65535, "expected a whole number from 1 to 65535")? as u32
            }
            "socket-user" => {
                group.socket_user = Some(resolve_user_allowing_root(value, lookups).map_err(|why| invalid(&why))?.uid)
            }
            "connect-timeout" => group.connect_timeout = seconds()?,
            "socket-timeout" => group.socket_timeout = Some(seconds()?),
            "header-buffer-size" => group.header_buffer_size = buffer(8192, "the default, 32768")?,
            "response-buffer-size" => group.response_buffer_size = buffer(65536, "the default, 65536")?,
            "send-buffer-size" => group.send_buffer_size = buffer(512, "the system's default")?,
            "receive-buffer-size" => group.receive_buffer_size = buffer(512, "the system's default")?,
            "python-optimize" => {
                group.python_optimize = Some(config::parse_python_optimize(value).map_err(|_| invalid("expected 0, 1 or 2"))?)
            }
            lifecycle if is_lifecycle_option(lifecycle) => group.lifecycle.set(key, value).map_err(|why| invalid(&why))?,
            other => unreachable!("check_option_name let through {other}"),
        }
    }
    default_home(&mut group, lookups);
    Ok(group)
}

/// Without `home=`, a daemon running as another user starts in that
/// user's home directory, as with mod_wsgi. mod_wsgi gives up when that
/// directory does not exist (`nobody`'s is /nonexistent) and restarts the
/// daemon in a loop; here the daemon starts in `/` and says why.
fn default_home(group: &mut DaemonGroup, lookups: &dyn Lookups) {
    let (None, Some(user)) = (&group.home, &group.user) else { return };
    if user.home.starts_with('/') && lookups.is_dir(&user.home) {
        group.home = Some(trim_trailing_slashes(&user.home));
    } else {
        group.home = Some("/".to_owned());
        group.home_note = Some(format!(
            "{DIRECTIVE} {}: the home directory '{}' of user {} does not exist or is not a directory, \
             so the daemon processes start in '/'; set home= to choose their working directory",
            group.name.escape_default(),
            user.home.escape_default(),
            user.name
        ));
    }
}

/// A group name is used in log lines, process titles and every
/// `WSGIProcessGroup` that names it.
fn check_group_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "expected the name of the process group, then option=value pairs"
    } else if name.contains('=') {
        "the first argument is the group's name, and this looks like an option"
    } else if name.starts_with("%{") {
        "names of the form %{...} are reserved for WSGIProcessGroup's special values"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "a group name cannot hold spaces or control characters"
    } else {
        return Ok(());
    };
    if name.is_empty() {
        Err(format!("{DIRECTIVE}: {why}"))
    } else {
        Err(format!("{DIRECTIVE}: invalid group name '{}': {why}", name.escape_default()))
    }
}

fn is_lifecycle_option(key: &str) -> bool {
    daemon_lifecycle::OPTIONS.contains(&key) || daemon_lifecycle::ZERO_ONLY_OPTIONS.contains(&key)
}

fn check_option_name(group: &str, key: &str) -> Result<(), String> {
    if SUPPORTED_OPTIONS.contains(&key) || is_lifecycle_option(key) {
        Ok(())
    } else if OTHER_MOD_WSGI_OPTIONS.contains(&key) {
        Err(format!("{DIRECTIVE} {group}: option {key} is not supported yet by mod_wsgi_rs; remove it"))
    } else {
        Err(format!(
            "{DIRECTIVE} {group}: unknown option '{}'; expected one of {}",
            key.escape_default(),
            SUPPORTED_OPTIONS.iter().chain(&daemon_lifecycle::OPTIONS).copied().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// `user=`: daemons never run as root (mod_wsgi refuses it too), and a
/// `#UID` must be in the user database, which gives the daemon its
/// primary group and home directory.
fn resolve_user(value: &str, lookups: &dyn Lookups) -> Result<DaemonUser, String> {
    let user = resolve_user_allowing_root(value, lookups)?;
    if user.uid == 0 {
        return Err("daemon processes never run as root (uid 0)".to_owned());
    }
    Ok(user)
}

fn resolve_user_allowing_root(value: &str, lookups: &dyn Lookups) -> Result<DaemonUser, String> {
    match value.strip_prefix('#') {
        Some(digits) => {
            let uid = whole_number(digits, 0..=u32::MAX as u64).ok_or("expected a user name or #UID")? as u32;
            lookups.user_by_uid(uid).ok_or_else(|| format!("no user has uid {uid}"))
        }
        None if value.is_empty() => Err("expected a user name or #UID".to_owned()),
        None => lookups.user_by_name(value).ok_or_else(|| "there is no such user".to_owned()),
    }
}

/// `group=` and each of `supplementary-groups=`. A `#GID` the group
/// database does not list is still a valid group to switch to, as with
/// mod_wsgi; a name must exist.
fn resolve_group(value: &str, lookups: &dyn Lookups) -> Result<DaemonGroupId, String> {
    match value.strip_prefix('#') {
        Some(digits) => {
            let gid = whole_number(digits, 0..=u32::MAX as u64).ok_or("expected a group name or #GID")? as u32;
            Ok(lookups.group_by_gid(gid).unwrap_or(DaemonGroupId { name: format!("#{gid}"), gid }))
        }
        None if value.is_empty() => Err("expected a group name or #GID".to_owned()),
        None => lookups
            .group_by_name(value)
            .ok_or_else(|| format!("there is no group named '{}'", value.escape_default())),
    }
}

/// ASCII digits only: no sign, no spaces, no fraction (mod_wsgi's atoi
/// reads `2abc` as 2 and `abc` as 0).
fn whole_number(value: &str, range: RangeInclusive<u64>) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().filter(|n| range.contains(n))
}

fn parse_umask(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(value, 8).ok().filter(|&m| m <= 0o777)
}

fn trim_trailing_slashes(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// C's isspace, which Apache's argument reader uses.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Reads one argument as Apache's ap_getword_conf does: leading spaces
/// skipped, a word in single or double quotes may hold spaces (a
/// backslash escapes the quote or a backslash), otherwise up to the next
/// space; the spaces after it are consumed too.
fn next_word(line: &mut &str) -> String {
    let s = line.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let bytes = s.as_bytes();
    // Every index below stops at an ASCII byte or the end, so slicing
    // there is on a character boundary.
    let (word, mut end) = match bytes.first() {
        None => (String::new(), 0),
        Some(&quote @ (b'"' | b'\'')) => {
            let mut i = 1;
            while i < bytes.len() && bytes[i] != quote {
                let escaped = bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(&n) if n == quote || n == b'\\');
                i += if escaped { 2 } else { 1 };
            }
            let word = unescape(&s[1..i], Some(quote));
            (word, if i < bytes.len() { i + 1 } else { i })
        }
        Some(_) => {
            let i = bytes.iter().position(|&b| is_space(b)).unwrap_or(bytes.len());
            (unescape(&s[..i], None), i)
        }
    };
    while end < bytes.len() && is_space(bytes[end]) {
        end += 1;
    }
    *line = &s[end..];
    word
}

/// A backslash before a backslash (or before the quote character inside
/// quotes) stands for that character; any other backslash is literal.
fn unescape(s: &str, quote: Option<u8>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n)) if n == '\\' || quote.is_some_and(|q| n == q as char) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Reads `name=value` (the value possibly quoted) as mod_wsgi does for
/// its option lists; on a word without `=`, returns that word.
fn next_option(line: &mut &str) -> Result<(String, String), String> {
    let s = line.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let end = s.find(|c: char| c == '=' || (c.is_ascii() && is_space(c as u8))).unwrap_or(s.len());
    if end == 0 || !s[end..].starts_with('=') {
        let mut word_line = s;
        let word = next_word(&mut word_line);
        *line = word_line;
        return Err(word);
    }
    let key = s[..end].to_owned();
    let mut rest = &s[end + 1..];
    let value = if rest.starts_with(|c: char| c.is_ascii() && is_space(c as u8)) { String::new() } else { next_word(&mut rest) };
    *line = rest.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    Ok((key, value))
}

/// Where an application runs: `WSGIProcessGroup` and the `process-group=`
/// option of `WSGIScriptAlias`, `WSGIScriptAliasMatch` and
/// `WSGIImportScript`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProcessGroup {
    /// `%{GLOBAL}`: embedded, in the Apache child itself (the default).
    #[default]
    Global,
    /// The name of a `WSGIDaemonProcess` group.
    Named(String),
    /// `%{ENV:VARIABLE}`: the group named by a request variable (set by
    /// SetEnv, SetEnvIf or mod_rewrite), resolved for each request.
    Env(String),
}

impl ProcessGroup {
    pub fn is_global(&self) -> bool {
        *self == ProcessGroup::Global
    }
}

impl fmt::Display for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessGroup::Global => f.write_str(config::GLOBAL_GROUP),
            ProcessGroup::Named(name) => f.write_str(name),
            ProcessGroup::Env(variable) => write!(f, "%{{ENV:{variable}}}"),
        }
    }
}

/// A process group value. The error is a sentence for the caller to put
/// after the directive's name.
pub fn parse_process_group(value: &str) -> Result<ProcessGroup, String> {
    if value == config::GLOBAL_GROUP {
        return Ok(ProcessGroup::Global);
    }
    let variable = value.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}'));
    match variable {
        Some(v) if is_variable_name(v) => Ok(ProcessGroup::Env(v.to_owned())),
        None if !value.is_empty() && !value.starts_with("%{") && check_group_name(value).is_ok() => {
            Ok(ProcessGroup::Named(value.to_owned()))
        }
        _ => Err(format!(
            "invalid process group '{}'; expected %{{GLOBAL}}, %{{ENV:VARIABLE}} or the name of a \
             WSGIDaemonProcess group",
            value.escape_default()
        )),
    }
}

/// The `VARIABLE` of a `%{ENV:VARIABLE}` value (process and application
/// groups): something SetEnv, SetEnvIf or mod_rewrite can set, and that
/// reads back unambiguously in log lines.
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['{', '}']) && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `WSGISocketPrefix`, after Apache made a relative path absolute under
/// ServerRoot (as mod_wsgi does): sockets are named by appending to it,
/// so its directory must exist and the whole must leave room for the
/// suffix in a UNIX socket path.
pub fn parse_socket_prefix(path: &str, lookups: &dyn Lookups) -> Result<String, String> {
    let directive = "WSGISocketPrefix";
    if !path.starts_with('/') {
        return Err(format!("{directive}: '{}' must be an absolute path", path.escape_default()));
    }
    if path.len() > SOCKET_PREFIX_MAX_LEN {
        return Err(format!(
            "{directive}: '{}' is {} bytes long; at most {SOCKET_PREFIX_MAX_LEN} fit in a UNIX socket path \
             with the suffix the sockets get",
            path.escape_default(),
            path.len()
        ));
    }
    let dir = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => unreachable!("an absolute path holds a '/'"),
    };
    if !lookups.is_dir(dir) {
        return Err(format!(
            "{directive}: the directory '{}' of '{}' does not exist",
            dir.escape_default(),
            path.escape_default()
        ));
    }
    // The sockets are made there when Apache starts, by this same user:
    // better to say so now than to fail at every start.
    if let Err(why) = lookups.may_create_in(dir) {
        return Err(format!(
            "{directive}: the directory '{}' of '{}' is not writable ({why}); the daemon process groups' \
             sockets are made there",
            dir.escape_default(),
            path.escape_default()
        ));
    }
    Ok(path.to_owned())
}

/// What the whole-configuration check needs to know about the server a
/// directive appeared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Whether it is a `<VirtualHost>` (false: the main server).
    pub virtual_host: bool,
    /// Its ServerName as Apache settled it.
    pub hostname: String,
}

impl ServerInfo {
    fn describe(&self) -> String {
        if self.virtual_host {
            format!("the virtual host {}", self.hostname)
        } else {
            format!("the main server (ServerName {})", self.hostname)
        }
    }
}

#[derive(Debug)]
struct Defined<S> {
    group: DaemonGroup,
    server: S,
    location: Option<String>,
}

#[derive(Debug)]
struct GroupUse<S> {
    directive: String,
    name: String,
    server: S,
    inherited: bool,
    location: Option<String>,
}

/// Every group and every literal use of a group name, gathered while the
/// configuration is read. Whether a name is defined, and visible where it
/// is used, can only be known once every `WSGIDaemonProcess` has been
/// read (a group may be defined after its first use, or in another host),
/// so [`DaemonRegistry::finish`] runs when Apache has read everything.
/// `S` identifies a server (a `server_rec` pointer in the glue).
#[derive(Debug)]
pub struct DaemonRegistry<S> {
    groups: Vec<Defined<S>>,
    uses: Vec<GroupUse<S>>,
}

impl<S> Default for DaemonRegistry<S> {
    fn default() -> Self {
        DaemonRegistry { groups: Vec::new(), uses: Vec::new() }
    }
}

impl<S: Copy> DaemonRegistry<S> {
    /// Adds a group read in `server`; its name must be unique in the whole
    /// configuration, virtual hosts included, as with mod_wsgi.
    pub fn define(&mut self, group: DaemonGroup, server: S, location: Option<String>) -> Result<(), String> {
        if let Some(first) = self.groups.iter().find(|d| d.group.name == group.name) {
            return Err(format!(
                "{DIRECTIVE}: a group named '{}' is already defined{}",
                group.name.escape_default(),
                first.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default()
            ));
        }
        self.groups.push(Defined { group, server, location });
        Ok(())
    }

    /// Notes that `directive` in `server` names `group`, if it is a
    /// literal name. `inherited`: the setting also applies to other hosts
    /// than `server` (a `WSGIProcessGroup` in the main server, or in a
    /// section of it, is inherited by every virtual host), so whether the
    /// group is visible is only known per request.
    pub fn record_use(&mut self, directive: &str, group: &ProcessGroup, server: S, inherited: bool, location: Option<String>) {
        if let ProcessGroup::Named(name) = group {
            self.uses.push(GroupUse { directive: directive.to_owned(), name: name.clone(), server, inherited, location });
        }
    }

    /// The groups in configuration order with `defined_in` set, or every
    /// error found: a name no group has, or a group of one virtual host
    /// named from a host with another ServerName.
    pub fn finish(&self, server_info: impl Fn(S) -> ServerInfo) -> Result<Vec<DaemonGroup>, Vec<String>> {
        let groups: Vec<DaemonGroup> = self
            .groups
            .iter()
            .map(|d| {
                let info = server_info(d.server);
                DaemonGroup { defined_in: info.virtual_host.then_some(info.hostname), ..d.group.clone() }
            })
            .collect();
        let at = |location: &Option<String>| location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
        let mut errors = Vec::new();
        for used in &self.uses {
            let Some(index) = groups.iter().position(|g| g.name == used.name) else {
                let known = if groups.is_empty() {
                    "no group is defined".to_owned()
                } else {
                    format!("defined: {}", groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", "))
                };
                errors.push(format!(
                    "{}: no WSGIDaemonProcess defines a group named '{}'{}; {known}",
                    used.directive,
                    used.name.escape_default(),
                    at(&used.location)
                ));
                continue;
            };
            let (group, defined) = (&groups[index], &self.groups[index]);
            let user = server_info(used.server);
            if used.inherited || group.visible_from(&user.hostname) {
                continue;
            }
            errors.push(format!(
                "{}: group '{}' is defined in {}{} and can be used only from hosts with that ServerName, \
                 not from {}{}; define it outside <VirtualHost> to share it",
                used.directive,
                used.name.escape_default(),
                server_info(defined.server).describe(),
                at(&defined.location),
                user.describe(),
                at(&used.location)
            ));
        }
        if errors.is_empty() {
            Ok(groups)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    fn user(name: &str, uid: u32, gid: u32, home: &str) -> DaemonUser {
        DaemonUser { name: name.into(), uid, gid, home: home.into() }
    }

    const USERS: [(&str, u32, u32, &str); 5] = [
        ("root", 0, 0, "/root"),
        ("www-data", 33, 33, "/var/www"),
        ("alice", 1000, 1000, "/home/alice/"),
        ("nobody", 65534, 65534, "/nonexistent"),
        ("nohome", 1001, 1001, ""),
    ];
    const GROUPS: [(&str, u32); 4] = [("root", 0), ("www-data", 33), ("staff", 50), ("alice", 1000)];
    const DIRS: [&str; 7] = ["/", "/root", "/var/www", "/home/alice", "/srv", "/srv/app", "/run"];

    impl Lookups for Fake {
        fn user_by_name(&self, name: &str) -> Option<DaemonUser> {
            USERS.iter().find(|u| u.0 == name).map(|u| user(u.0, u.1, u.2, u.3))
        }
        fn user_by_uid(&self, uid: u32) -> Option<DaemonUser> {
            USERS.iter().find(|u| u.1 == uid).map(|u| user(u.0, u.1, u.2, u.3))
        }
        fn group_by_name(&self, name: &str) -> Option<DaemonGroupId> {
            GROUPS.iter().find(|g| g.0 == name).map(|g| DaemonGroupId { name: g.0.into(), gid: g.1 })
        }
        fn group_by_gid(&self, gid: u32) -> Option<DaemonGroupId> {
            GROUPS.iter().find(|g| g.1 == gid).map(|g| DaemonGroupId { name: g.0.into(), gid: g.1 })
        }
        fn is_dir(&self, path: &str) -> bool {
            DIRS.contains(&path.trim_end_matches('/')) || path == "/"
        }
        fn may_create_in(&self, path: &str) -> Result<(), String> {
            if path == "/srv" { Err("Read-only file system".into()) } else { Ok(()) }
        }
    }

    fn parse(args: &str) -> Result<DaemonGroup, String> {
        parse_daemon_process(args, &Fake)
    }

    fn error(args: &str) -> String {
        parse(args).expect_err(args)
    }

    #[test]
    fn defaults_are_mod_wsgi_s() {
        let g = parse("site").unwrap();
        assert_eq!(g, DaemonGroup::with_defaults("site"));
        assert_eq!((g.processes, g.threads, g.listen_backlog), (1, 15, 100));
        assert_eq!(g.connect_timeout, Duration::from_secs(15));
        assert_eq!((g.socket_timeout, g.user.clone(), g.group.clone(), g.home.clone()), (None, None, None, None));
        assert_eq!((g.header_buffer_size, g.response_buffer_size, g.send_buffer_size, g.receive_buffer_size), (0, 0, 0, 0));
        assert_eq!(g.effective_header_buffer_size(), 32768);
        assert_eq!((g.title(), g.home_note.clone(), g.defined_in.clone()), (None, None, None));
    }

    #[test]
    fn every_option_is_read() {
        let g = parse(
            "full processes=3 threads=8 user=alice group=staff supplementary-groups=www-data,#4242 \
             home=/srv/app/ python-home=/srv/venv/ python-path=/srv/app:/srv/lib display-name=%{GROUP} \
             umask=0007 lang=en_US.UTF-8 locale=C.UTF-8 listen-backlog=50 socket-user=www-data \
             connect-timeout=5 socket-timeout=60 header-buffer-size=65536 response-buffer-size=131072 \
             send-buffer-size=512 receive-buffer-size=1048576 python-optimize=2",
        )
        .unwrap();
        assert_eq!((g.processes, g.threads), (3, 8));
        assert_eq!(g.user, Some(user("alice", 1000, 1000, "/home/alice/")));
        assert_eq!(g.group, Some(DaemonGroupId { name: "staff".into(), gid: 50 }));
        assert_eq!(g.supplementary_groups, [33, 4242]);
        assert_eq!(g.home.as_deref(), Some("/srv/app"));
        assert_eq!(g.home_note, None);
        assert_eq!(g.python_home.as_deref(), Some("/srv/venv"));
        assert_eq!(g.python_path, ["/srv/app", "/srv/lib"]);
        assert_eq!(g.title().as_deref(), Some("(wsgi:full)"));
        assert_eq!(g.umask, Some(0o007));
        assert_eq!((g.lang.as_deref(), g.locale.as_deref()), (Some("en_US.UTF-8"), Some("C.UTF-8")));
        assert_eq!((g.listen_backlog, g.socket_user), (50, Some(33)));
        assert_eq!((g.connect_timeout, g.socket_timeout), (Duration::from_secs(5), Some(Duration::from_secs(60))));
        assert_eq!((g.header_buffer_size, g.response_buffer_size), (65536, 131072));
        assert_eq!((g.send_buffer_size, g.receive_buffer_size), (512, 1048576));
        assert_eq!(g.python_optimize.map(|l| l.get()), Some(2));
    }

    #[test]
    fn bounds_of_numbers_are_inclusive() {
        for (args, check) in [
            ("g processes=1 threads=1", (1, 1)),
            ("g processes=128 threads=1000", (128, 1000)),
            ("g processes=007 threads=015", (7, 15)),
        ] {
            let g = parse(args).unwrap();
            assert_eq!((g.processes, g.threads), check, "{args}");
        }
        let g = parse("g listen-backlog=1 connect-timeout=86400 socket-timeout=1 umask=0 header-buffer-size=0").unwrap();
        assert_eq!((g.listen_backlog, g.connect_timeout, g.umask), (1, Duration::from_secs(86400), Some(0)));
        assert_eq!(g.socket_timeout, Some(Duration::from_secs(1)));
        let g = parse("g umask=777 header-buffer-size=8192 response-buffer-size=65536 listen-backlog=65535").unwrap();
        assert_eq!((g.umask, g.header_buffer_size, g.response_buffer_size), (Some(0o777), 8192, 65536));
        let g = parse("g send-buffer-size=1073741824 receive-buffer-size=0").unwrap();
        assert_eq!((g.send_buffer_size, g.receive_buffer_size), (1 << 30, 0));
    }

    #[test]
    fn bad_numbers_name_the_option_the_value_and_the_range() {
        assert_eq!(
            error("site processes=abc"),
            "WSGIDaemonProcess site: invalid value 'abc' for processes; expected a whole number from 1 to 128"
        );
        let cases = [
            ("processes", ["0", "129", "-1", "+2", "1.5", "2abc", "", " 1", "99999999999999999999999"].as_slice(), "from 1 to 128"),
            ("threads", &["0", "1001", "-1", "abc", "15 "], "from 1 to 1000"),
            ("listen-backlog", &["0", "65536", "x"], "from 1 to 65535"),
            ("connect-timeout", &["0", "86401", "1.5", "5s"], "whole number of seconds from 1 to 86400"),
            ("socket-timeout", &["0", "-5", "ten"], "whole number of seconds from 1 to 86400"),
            ("header-buffer-size", &["8191", "1", "1073741825", "32k"], "0 (the default, 32768) or a whole number of bytes from 8192"),
            ("response-buffer-size", &["65535", "-1"], "0 (the default, 65536) or a whole number of bytes from 65536"),
            ("send-buffer-size", &["511", "abc"], "0 (the system's default) or a whole number of bytes from 512"),
            ("receive-buffer-size", &["1", "1e6"], "from 512 to 1073741824"),
            ("umask", &["0008", "1000", "0o22", "-1", "", "abc", "0x1"], "octal number from 0000 to 0777"),
            ("python-optimize", &["3", "-1", "On", "", "01x"], "expected 0, 1 or 2"),
        ];
        for (option, values, expected) in cases {
            for value in values {
                let quoted = if value.contains(' ') { format!("\"{value}\"") } else { value.to_string() };
                let err = error(&format!("site {option}={quoted}"));
                let head = format!("WSGIDaemonProcess site: invalid value '{}' for {option}; ", value.escape_default());
                assert!(err.starts_with(&head), "{option}={value}: {err}");
                assert!(err.contains(expected), "{option}={value}: {err}");
            }
        }
    }

    #[test]
    fn users_and_groups_are_looked_up() {
        let g = parse("g user=#33").unwrap();
        assert_eq!(g.user, Some(user("www-data", 33, 33, "/var/www")));
        assert_eq!(g.home.as_deref(), Some("/var/www"));
        let g = parse("g group=#33").unwrap();
        assert_eq!(g.group, Some(DaemonGroupId { name: "www-data".into(), gid: 33 }));
        // A numeric group needs no name, as setgid does not.
        let g = parse("g group=#4242 supplementary-groups=staff").unwrap();
        assert_eq!(g.group, Some(DaemonGroupId { name: "#4242".into(), gid: 4242 }));
        assert_eq!(g.supplementary_groups, [50]);
        assert_eq!(parse("g socket-user=#0").unwrap().socket_user, Some(0));
        assert_eq!(parse("g socket-user=root").unwrap().socket_user, Some(0));
        for (args, expected) in [
            ("g user=bob", "invalid value 'bob' for user; there is no such user"),
            ("g user=#4242", "invalid value '#4242' for user; no user has uid 4242"),
            ("g user=", "invalid value '' for user; expected a user name or #UID"),
            ("g user=#", "invalid value '#' for user; expected a user name or #UID"),
            ("g user=#-1", "invalid value '#-1' for user; expected a user name or #UID"),
            ("g user=root", "invalid value 'root' for user; daemon processes never run as root (uid 0)"),
            ("g user=#0", "invalid value '#0' for user; daemon processes never run as root"),
            ("g group=wheel", "invalid value 'wheel' for group; there is no group named 'wheel'"),
            ("g group=", "invalid value '' for group; expected a group name or #GID"),
            ("g group=#x", "invalid value '#x' for group; expected a group name or #GID"),
            ("g socket-user=bob", "invalid value 'bob' for socket-user; there is no such user"),
            ("g socket-user=#4242", "no user has uid 4242"),
            ("g supplementary-groups=staff,wheel", "invalid value 'staff,wheel' for supplementary-groups; there is no group named 'wheel'"),
            ("g supplementary-groups=staff,", "invalid value 'staff,' for supplementary-groups; expected group names or #GIDs separated by commas"),
            ("g supplementary-groups=", "invalid value '' for supplementary-groups; expected group names or #GIDs separated by commas"),
            ("g supplementary-groups=#x", "invalid value '#x' for supplementary-groups; expected a group name or #GID"),
        ] {
            let err = error(args);
            assert!(err.starts_with("WSGIDaemonProcess g: "), "{args}: {err}");
            assert!(err.contains(expected), "{args}: {err}");
        }
    }

    #[test]
    fn home_defaults_to_the_user_s_existing_home_else_root_with_a_note() {
        let g = parse("g user=alice").unwrap();
        assert_eq!((g.home.as_deref(), g.home_note.as_deref()), (Some("/home/alice"), None));
        for who in ["nobody", "nohome"] {
            let g = parse(&format!("g user={who}")).unwrap();
            assert_eq!(g.home.as_deref(), Some("/"), "{who}");
            let note = g.home_note.unwrap();
            assert!(note.starts_with("WSGIDaemonProcess g: the home directory '"), "{note}");
            assert!(note.contains(&format!("of user {who} does not exist")) && note.contains("start in '/'"), "{note}");
            assert!(note.contains("set home="), "{note}");
        }
        assert!(parse("g user=nobody").unwrap().home_note.unwrap().contains("'/nonexistent'"));
        // An explicit home wins and needs no note; without user= the
        // daemons stay where Apache is.
        let g = parse("g user=nobody home=/srv").unwrap();
        assert_eq!((g.home.as_deref(), g.home_note), (Some("/srv"), None));
        assert_eq!(parse("g home=/").unwrap().home.as_deref(), Some("/"));
        assert_eq!(parse("g group=staff").unwrap().home, None);
    }

    #[test]
    fn home_must_be_an_existing_absolute_directory() {
        assert_eq!(error("g home=srv"), "WSGIDaemonProcess g: invalid value 'srv' for home; expected an absolute path");
        assert_eq!(error("g home="), "WSGIDaemonProcess g: invalid value '' for home; expected an absolute path");
        assert_eq!(
            error("g home=/srv/missing"),
            "WSGIDaemonProcess g: invalid value '/srv/missing' for home; it is not an existing directory"
        );
    }

    #[test]
    fn paths_and_texts() {
        assert!(error("g python-home=venv").ends_with("invalid value 'venv' for python-home; expected an absolute path"));
        assert!(error("g python-path=/a:b").contains("invalid value '/a:b' for python-path; expected absolute directories separated by ':'"));
        assert!(error("g python-path=").contains("for python-path"));
        assert_eq!(parse("g python-path=/a::/b:").unwrap().python_path, ["/a", "/b"]);
        for option in ["display-name", "lang", "locale"] {
            let err = error(&format!("g {option}="));
            assert!(err.starts_with(&format!("WSGIDaemonProcess g: invalid value '' for {option}; expected ")), "{err}");
        }
        let g = parse("g display-name=\"my site %{GROUP}\" lang='en_GB.UTF-8'").unwrap();
        assert_eq!(g.title().as_deref(), Some("my site (wsgi:g)"));
        assert_eq!(g.lang.as_deref(), Some("en_GB.UTF-8"));
        assert_eq!(parse("g display-name=httpd-wsgi").unwrap().title().as_deref(), Some("httpd-wsgi"));
    }

    #[test]
    fn unsupported_mod_wsgi_options_are_refused_by_name() {
        for option in daemon_lifecycle::ZERO_ONLY_OPTIONS {
            let err = error(&format!("site {option}=10"));
            assert_eq!(
                err,
                format!(
                    "WSGIDaemonProcess site: invalid value '10' for {option}; mod_wsgi_rs supports only 0 (off) \
                     for {option}; remove it or set it to 0"
                )
            );
        }
        for option in OTHER_MOD_WSGI_OPTIONS {
            let err = error(&format!("site {option}=x"));
            assert_eq!(err, format!("WSGIDaemonProcess site: option {option} is not supported yet by mod_wsgi_rs; remove it"));
        }
        // Every option of mod_wsgi 4.9 and 6.x is either implemented or
        // refused by name, never "unknown".
        let mod_wsgi_options = "user group supplementary-groups processes threads umask chroot home lang \
            locale python-home python-path python-eggs switch-interval stack-size maximum-requests \
            startup-timeout shutdown-timeout deadlock-timeout inactivity-timeout request-timeout \
            interrupt-timeout graceful-timeout eviction-timeout restart-interval connect-timeout \
            socket-timeout queue-timeout listen-backlog display-name send-buffer-size receive-buffer-size \
            header-buffer-size response-buffer-size response-socket-timeout response-flush-delay \
            socket-user script-user script-group cpu-time-limit cpu-priority memory-limit \
            virtual-memory-limit server-metrics newrelic-config-file newrelic-environment";
        for option in mod_wsgi_options.split_whitespace() {
            let refused = check_option_name("g", option).err().unwrap_or_default();
            assert!(!refused.contains("unknown option"), "{option}: {refused}");
        }
    }

    #[test]
    fn malformed_lines() {
        let err = error("site bogus=1");
        assert!(err.starts_with("WSGIDaemonProcess site: unknown option 'bogus'; expected one of processes, threads, user,"), "{err}");
        assert!(err.ends_with("python-optimize, maximum-requests, restart-interval, inactivity-timeout, rss-limit, request-timeout, deadlock-timeout, startup-timeout, queue-timeout, graceful-timeout, eviction-timeout, shutdown-timeout, memory-limit, virtual-memory-limit, cpu-time-limit, cpu-priority, stack-size"), "{err}");
        assert_eq!(error("site threads"), "WSGIDaemonProcess site: 'threads' is not of the form option=value");
        assert_eq!(error("site =5"), "WSGIDaemonProcess site: '=5' is not of the form option=value");
        assert_eq!(error("site threads=2 \"a b\""), "WSGIDaemonProcess site: 'a b' is not of the form option=value");
        assert_eq!(error("site threads=2 threads=3"), "WSGIDaemonProcess site: option threads is given twice");
        assert_eq!(error("site processes=1 user=www-data processes=2"), "WSGIDaemonProcess site: option processes is given twice");
        assert_eq!(error(""), "WSGIDaemonProcess: expected the name of the process group, then option=value pairs");
        assert_eq!(error("   "), error(""));
        assert_eq!(error("\"\" threads=1"), error(""));
        let err = error("processes=2 threads=4");
        assert_eq!(err, "WSGIDaemonProcess: invalid group name 'processes=2': the first argument is the group's name, and this looks like an option");
        assert!(error("%{GLOBAL}").contains("reserved"));
        assert!(error("\"my site\"").contains("cannot hold spaces"));
        assert!(error("site\u{7}").contains("'site\\u{7}'"));
    }

    #[test]
    fn names_and_values_may_be_quoted_as_apache_quotes_arguments() {
        let g = parse("\"bob:1\"   display-name='it\\'s %{GROUP}'\tpython-path=\"/srv/a b:/srv/c\"  ").unwrap();
        assert_eq!(g.name, "bob:1");
        assert_eq!(g.display_name.as_deref(), Some("it's %{GROUP}"));
        assert_eq!(g.python_path, ["/srv/a b", "/srv/c"]);
        // Names mod_wsgi configurations use in the wild.
        for name in ["my.domain", "bob:1", "placement-api", "site_1", "\u{e9}t\u{e9}"] {
            assert_eq!(parse(name).unwrap().name, name);
        }
    }

    #[test]
    fn word_reader_follows_ap_getword_conf() {
        let words = |line: &str| {
            let mut rest = line;
            let mut out = Vec::new();
            loop {
                let w = next_word(&mut rest);
                if w.is_empty() && rest.is_empty() {
                    return out;
                }
                out.push(w);
            }
        };
        assert_eq!(words("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(words(r#""a b" 'c d' e"#), ["a b", "c d", "e"]);
        assert_eq!(words(r#""a \" b" 'it\'s' x\\y x\y"#), ["a \" b", "it's", "x\\y", "x\\y"]);
        assert_eq!(words(r#""unterminated"#), ["unterminated"]);
        assert_eq!(words("\u{e9}\u{e8} \u{2603}"), ["\u{e9}\u{e8}", "\u{2603}"]);
    }

    #[test]
    fn process_groups() {
        assert_eq!(parse_process_group("%{GLOBAL}"), Ok(ProcessGroup::Global));
        assert_eq!(parse_process_group("site"), Ok(ProcessGroup::Named("site".into())));
        assert_eq!(parse_process_group("bob:1"), Ok(ProcessGroup::Named("bob:1".into())));
        assert_eq!(parse_process_group("%{ENV:GROUP}"), Ok(ProcessGroup::Env("GROUP".into())));
        assert_eq!(parse_process_group("%{ENV:wsgi.group}"), Ok(ProcessGroup::Env("wsgi.group".into())));
        for bad in ["", "%{RESOURCE}", "%{SERVER}", "%{HOST}", "%{ENV:}", "%{ENV:A", "%{ENV:a b}", "%{ENV:{x}}", "%{global}", "a b", "a=b"] {
            let err = parse_process_group(bad).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "invalid process group '{}'; expected %{{GLOBAL}}, %{{ENV:VARIABLE}} or the name of a WSGIDaemonProcess group",
                    bad.escape_default()
                )
            );
        }
        for value in ["%{GLOBAL}", "site", "%{ENV:GROUP}"] {
            assert_eq!(parse_process_group(value).unwrap().to_string(), value);
        }
        assert!(ProcessGroup::default().is_global() && !ProcessGroup::Named("g".into()).is_global());
    }

    #[test]
    fn socket_prefix() {
        assert_eq!(parse_socket_prefix("/run/wsgi", &Fake), Ok("/run/wsgi".to_owned()));
        assert_eq!(parse_socket_prefix("/wsgi", &Fake), Ok("/wsgi".to_owned()));
        assert_eq!(
            parse_socket_prefix("/var/run/wsgi", &Fake).unwrap_err(),
            "WSGISocketPrefix: the directory '/var/run' of '/var/run/wsgi' does not exist"
        );
        assert_eq!(
            parse_socket_prefix("/srv/wsgi", &Fake).unwrap_err(),
            "WSGISocketPrefix: the directory '/srv' of '/srv/wsgi' is not writable (Read-only file system); \
             the daemon process groups' sockets are made there"
        );
        assert!(parse_socket_prefix("run/wsgi", &Fake).unwrap_err().contains("must be an absolute path"));
        let long = format!("/run/{}", "x".repeat(SOCKET_PREFIX_MAX_LEN - 4));
        let err = parse_socket_prefix(&long, &Fake).unwrap_err();
        assert!(err.contains("81 bytes long; at most 80 fit"), "{err}");
        assert!(parse_socket_prefix(&long[..SOCKET_PREFIX_MAX_LEN], &Fake).is_ok());
    }

    /// Servers in the registry tests: (is a virtual host, ServerName).
    const MAIN: (bool, &str) = (false, "main.example");
    const SITE: (bool, &str) = (true, "site.example");
    const SITE_TLS: (bool, &str) = (true, "SITE.example");
    const OTHER: (bool, &str) = (true, "other.example");

    fn info((virtual_host, hostname): (bool, &str)) -> ServerInfo {
        ServerInfo { virtual_host, hostname: hostname.to_owned() }
    }

    fn at(line: u32) -> Option<String> {
        Some(format!("line {line} of /etc/apache2/apache2.conf"))
    }

    #[test]
    fn duplicate_names_are_refused_across_hosts() {
        let mut r = DaemonRegistry::default();
        r.define(DaemonGroup::with_defaults("site"), SITE, at(3)).unwrap();
        let err = r.define(DaemonGroup::with_defaults("site"), OTHER, at(9)).unwrap_err();
        assert_eq!(err, "WSGIDaemonProcess: a group named 'site' is already defined (line 3 of /etc/apache2/apache2.conf)");
        let err = r.define(DaemonGroup::with_defaults("site"), MAIN, None).unwrap_err();
        assert_eq!(err, "WSGIDaemonProcess: a group named 'site' is already defined (line 3 of /etc/apache2/apache2.conf)");
        let mut r = DaemonRegistry::default();
        r.define(DaemonGroup::with_defaults("a"), MAIN, None).unwrap();
        assert_eq!(
            r.define(DaemonGroup::with_defaults("a"), MAIN, None).unwrap_err(),
            "WSGIDaemonProcess: a group named 'a' is already defined"
        );
        // Names are compared exactly, as mod_wsgi does.
        r.define(DaemonGroup::with_defaults("A"), MAIN, None).unwrap();
    }

    #[test]
    fn finish_lists_every_group_in_order_with_its_host() {
        let mut r = DaemonRegistry::default();
        r.define(DaemonGroup::with_defaults("global"), MAIN, at(1)).unwrap();
        r.define(DaemonGroup::with_defaults("site"), SITE, at(5)).unwrap();
        r.define(DaemonGroup::with_defaults("late"), MAIN, at(20)).unwrap();
        let groups = r.finish(info).unwrap();
        let summary: Vec<(&str, Option<&str>)> = groups.iter().map(|g| (g.name.as_str(), g.defined_in.as_deref())).collect();
        assert_eq!(summary, [("global", None), ("site", Some("site.example")), ("late", None)]);
        assert!(groups[0].visible_from("anything") && groups[1].visible_from("Site.Example"));
        assert!(!groups[1].visible_from("other.example"));
        assert!(DaemonRegistry::<(bool, &str)>::default().finish(info).unwrap().is_empty());
    }

    #[test]
    fn named_groups_must_exist() {
        let mut r = DaemonRegistry::default();
        r.record_use("WSGIProcessGroup", &ProcessGroup::Named("nope".into()), MAIN, true, at(7));
        r.record_use("WSGIProcessGroup", &ProcessGroup::Global, MAIN, true, at(8));
        r.record_use("WSGIProcessGroup", &ProcessGroup::Env("NOPE".into()), OTHER, false, at(9));
        assert_eq!(
            r.finish(info).unwrap_err(),
            ["WSGIProcessGroup: no WSGIDaemonProcess defines a group named 'nope' (line 7 of /etc/apache2/apache2.conf); no group is defined"]
        );
        // Defined after its use: still found.
        r.define(DaemonGroup::with_defaults("a"), MAIN, at(30)).unwrap();
        r.define(DaemonGroup::with_defaults("b"), MAIN, at(31)).unwrap();
        r.record_use("WSGIScriptAlias", &ProcessGroup::Named("a".into()), OTHER, false, at(10));
        r.record_use("WSGIImportScript", &ProcessGroup::Named("c".into()), SITE, false, None);
        assert_eq!(
            r.finish(info).unwrap_err(),
            [
                "WSGIProcessGroup: no WSGIDaemonProcess defines a group named 'nope' (line 7 of /etc/apache2/apache2.conf); defined: a, b",
                "WSGIImportScript: no WSGIDaemonProcess defines a group named 'c'; defined: a, b",
            ]
        );
    }

    #[test]
    fn a_virtual_host_s_group_is_visible_only_from_hosts_with_its_server_name() {
        let mut r = DaemonRegistry::default();
        r.define(DaemonGroup::with_defaults("site"), SITE, at(5)).unwrap();
        r.define(DaemonGroup::with_defaults("shared"), MAIN, at(1)).unwrap();
        for (server, directive) in [(SITE, "WSGIProcessGroup"), (SITE_TLS, "WSGIScriptAlias")] {
            r.record_use(directive, &ProcessGroup::Named("site".into()), server, false, at(6));
        }
        for server in [MAIN, SITE, OTHER] {
            r.record_use("WSGIScriptAliasMatch", &ProcessGroup::Named("shared".into()), server, false, at(2));
        }
        // Set in the main server, inherited by every host: checked per request.
        r.record_use("WSGIProcessGroup", &ProcessGroup::Named("site".into()), MAIN, true, at(40));
        assert_eq!(r.finish(info).map(|g| g.len()), Ok(2));

        r.record_use("WSGIProcessGroup", &ProcessGroup::Named("site".into()), OTHER, false, at(12));
        r.record_use("WSGIImportScript", &ProcessGroup::Named("site".into()), MAIN, false, at(13));
        let errors = r.finish(info).unwrap_err();
        assert_eq!(
            errors,
            [
                "WSGIProcessGroup: group 'site' is defined in the virtual host site.example (line 5 of \
                 /etc/apache2/apache2.conf) and can be used only from hosts with that ServerName, not from \
                 the virtual host other.example (line 12 of /etc/apache2/apache2.conf); define it outside \
                 <VirtualHost> to share it",
                "WSGIImportScript: group 'site' is defined in the virtual host site.example (line 5 of \
                 /etc/apache2/apache2.conf) and can be used only from hosts with that ServerName, not from \
                 the main server (ServerName main.example) (line 13 of /etc/apache2/apache2.conf); define it \
                 outside <VirtualHost> to share it",
            ]
        );
    }
}
