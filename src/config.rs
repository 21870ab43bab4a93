//! The module's configuration as plain Rust: values parsed and validated
//! here, with no Apache calls, so every rule is unit-tested. The glue that
//! receives directives from Apache is in directives.rs.

use crate::application_group::{self, ApplicationGroup, StaticGroups};
use crate::daemon_config::{self, DaemonGroup, ProcessGroup};
use std::borrow::Cow;
use std::fmt;

/// Per-server configuration. Interpreter settings are only ever read from
/// the main server's copy; aliases are per virtual host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerConfig {
    /// `WSGIPythonOptimize`; `None` when the directive was not given.
    pub python_optimize: Option<OptimizeLevel>,
    /// The other interpreter directives (main server only).
    pub interpreter: InterpreterConfig,
    /// `WSGIScriptAlias` and `WSGIScriptAliasMatch` entries in
    /// configuration order.
    pub script_aliases: Vec<ScriptAlias>,
    /// `WSGIImportScript` lines, each loaded where its process group runs:
    /// in every Apache child for `%{GLOBAL}`, else in that group's daemons.
    pub import_scripts: Vec<ImportScript>,
    /// Every `WSGIDaemonProcess` group of the configuration, the main
    /// server's and each virtual host's (`defined_in` tells them apart), in
    /// configuration order. Only the main server's copy holds them: it is
    /// filled once the whole configuration has been read (directives.rs,
    /// check_config); virtual hosts' copies stay empty.
    pub daemon_groups: Vec<DaemonGroup>,
    /// `WSGISocketPrefix` made absolute (main server only); None: under
    /// Apache's DefaultRuntimeDir, see daemon_config::DEFAULT_SOCKET_PREFIX.
    pub socket_prefix: Option<String>,
    /// `WSGIRestrictEmbedded` (main server only, default Off).
    pub restrict_embedded: Option<bool>,
    /// The application group each process group is known to host from
    /// the configuration alone (`%{GLOBAL}` for the Apache children), for
    /// its processes to report from the start. Main server only, filled
    /// with `daemon_groups`.
    pub static_application_groups: StaticGroups,
}

impl ServerConfig {
    /// A virtual host sees its own aliases first, then the main server's,
    /// as with mod_alias: first match in that order wins.
    pub fn merge(base: &ServerConfig, vhost: &ServerConfig) -> ServerConfig {
        let mut script_aliases = vhost.script_aliases.clone();
        script_aliases.extend(base.script_aliases.iter().cloned());
        let mut import_scripts = base.import_scripts.clone();
        import_scripts.extend(vhost.import_scripts.iter().cloned());
        ServerConfig {
            python_optimize: vhost.python_optimize.or(base.python_optimize),
            interpreter: base.interpreter.clone(),
            script_aliases,
            import_scripts,
            // Apache merges before the daemon groups are collected; the
            // main server's list is the one to read.
            daemon_groups: Vec::new(),
            socket_prefix: base.socket_prefix.clone(),
            restrict_embedded: base.restrict_embedded,
            static_application_groups: Vec::new(),
        }
    }

    /// The application group the processes of `process_group` host
    /// according to the configuration, if it names one.
    pub fn static_application_group(&self, process_group: &ProcessGroup) -> Option<&str> {
        self.static_application_groups.iter().find(|(g, _)| g == process_group).map(|(_, name)| name.as_str())
    }

    /// The first alias that covers `uri`, with the file it maps to (the
    /// rest of the URI appended, for Apache to split off as PATH_INFO).
    pub fn map_uri<'a>(&'a self, uri: &'a [u8]) -> Option<(&'a ScriptAlias, MappedUri<'a>)> {
        self.script_aliases
            .iter()
            .find_map(|alias| alias.map_uri(uri).map(|file| (alias, file)))
    }
}

/// A Python compiler optimisation level, as `python -O` (1) or `-OO` (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OptimizeLevel(u8);

impl OptimizeLevel {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for OptimizeLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses `WSGIPythonOptimize`'s argument. Only the exact strings `0`, `1`
/// and `2` are levels; mod_wsgi silently reads `abc` as 0 and `3` as a
/// level nobody can use, which is how typos go unnoticed.
pub fn parse_python_optimize(value: &str) -> Result<OptimizeLevel, String> {
    match value {
        "0" => Ok(OptimizeLevel(0)),
        "1" => Ok(OptimizeLevel(1)),
        "2" => Ok(OptimizeLevel(2)),
        _ => Err(format!(
            "WSGIPythonOptimize: invalid value '{}'; expected 0, 1 or 2",
            value.escape_default()
        )),
    }
}

/// Interpreter settings, applied when Python starts in a child. All of
/// them are main-server directives: one interpreter serves every host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InterpreterConfig {
    /// `WSGIPythonHome`: a virtual environment or a Python prefix.
    pub home: Option<String>,
    /// `WSGIPythonPath`, split at colons.
    pub path: Vec<String>,
    /// `WSGIPythonHashSeed`.
    pub hash_seed: Option<HashSeed>,
    /// `WSGIPythonWarnings`, in configuration order.
    pub warnings: Vec<String>,
    /// `WSGIDontWriteBytecode` (default Off).
    pub dont_write_bytecode: Option<bool>,
    /// `WSGIRestrictStdout` (default Off: output goes to the error log).
    pub restrict_stdout: Option<bool>,
    /// `WSGIRestrictStdin` (default Off).
    pub restrict_stdin: Option<bool>,
    /// `WSGIRestrictSignal` (default On).
    pub restrict_signal: Option<bool>,
    /// `WSGIDestroyInterpreter` (default On).
    pub destroy_interpreter: Option<bool>,
    /// `WSGIPythonPycachePrefix` (ours); None: the default, see
    /// [`crate::pycache`].
    pub pycache_prefix: Option<PycachePrefix>,
}

impl InterpreterConfig {
    /// Sets one interpreter directive from its argument.
    pub fn set(&mut self, directive: &str, value: &str) -> Result<(), String> {
        match directive {
            "WSGIPythonHome" => self.home = Some(parse_python_home(value)?),
            "WSGIPythonPath" => self.path = parse_python_path(value)?,
            "WSGIPythonHashSeed" => self.hash_seed = Some(parse_hash_seed(value)?),
            "WSGIPythonWarnings" => self.warnings.push(parse_warning_filter(value)?),
            "WSGIDontWriteBytecode" => self.dont_write_bytecode = Some(parse_flag(directive, value)?),
            "WSGIRestrictStdout" => self.restrict_stdout = Some(parse_flag(directive, value)?),
            "WSGIRestrictStdin" => self.restrict_stdin = Some(parse_flag(directive, value)?),
            "WSGIRestrictSignal" => self.restrict_signal = Some(parse_flag(directive, value)?),
            "WSGIDestroyInterpreter" => self.destroy_interpreter = Some(parse_flag(directive, value)?),
            "WSGIPythonPycachePrefix" => self.pycache_prefix = Some(parse_pycache_prefix(value)?),
            other => return Err(format!("{other}: not an interpreter directive")),
        }
        Ok(())
    }

    /// The directives given, as `Name value` strings (for the log line that
    /// says which were not applied when another module owns Python).
    pub fn given(&self) -> Vec<String> {
        let on_off = |v: bool| if v { "On" } else { "Off" };
        let mut given = Vec::new();
        if let Some(home) = &self.home {
            given.push(format!("WSGIPythonHome {home}"));
        }
        if !self.path.is_empty() {
            given.push(format!("WSGIPythonPath {}", self.path.join(":")));
        }
        if let Some(seed) = &self.hash_seed {
            given.push(format!("WSGIPythonHashSeed {seed}"));
        }
        for warning in &self.warnings {
            given.push(format!("WSGIPythonWarnings {warning}"));
        }
        if let Some(prefix) = &self.pycache_prefix {
            given.push(format!("WSGIPythonPycachePrefix {prefix}"));
        }
        for (name, value) in [
            ("WSGIDontWriteBytecode", self.dont_write_bytecode),
            ("WSGIRestrictStdout", self.restrict_stdout),
            ("WSGIRestrictStdin", self.restrict_stdin),
            ("WSGIRestrictSignal", self.restrict_signal),
            ("WSGIDestroyInterpreter", self.destroy_interpreter),
        ] {
            if let Some(v) = value {
                given.push(format!("{name} {}", on_off(v)));
            }
        }
        given
    }
}

/// `WSGIPythonHashSeed`: `random` keeps hash randomisation on; a number
/// fixes the seed (0 turns randomisation off), as PYTHONHASHSEED does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSeed {
    Random,
    Fixed(u32),
}

impl fmt::Display for HashSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashSeed::Random => f.write_str("random"),
            HashSeed::Fixed(n) => n.fmt(f),
        }
    }
}

pub fn parse_hash_seed(value: &str) -> Result<HashSeed, String> {
    if value == "random" {
        return Ok(HashSeed::Random);
    }
    let number = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(n) if number => Ok(HashSeed::Fixed(n)),
        _ => Err(format!(
            "WSGIPythonHashSeed: invalid value '{}'; expected random or an integer from 0 to 4294967295",
            value.escape_default()
        )),
    }
}

/// `WSGIPythonHome`: an absolute path. Whether it holds a usable Python is
/// checked when the interpreter starts, where the answer can be logged
/// with what was found.
pub fn parse_python_home(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err(format!("WSGIPythonHome: '{}' must be an absolute path", value.escape_default()));
    }
    let trimmed = value.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
}

/// `WSGIPythonPycachePrefix`: where compiled modules are cached
/// (`sys.pycache_prefix`), or Off for beside their sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PycachePrefix {
    Off,
    Directory(String),
}

impl fmt::Display for PycachePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PycachePrefix::Off => f.write_str("Off"),
            PycachePrefix::Directory(dir) => f.write_str(dir),
        }
    }
}

/// `WSGIPythonPycachePrefix`: `Off`, or an absolute directory (trailing
/// slashes dropped; not `/`, whose per-user subdirectories would sit
/// beside the system's own).
pub fn parse_pycache_prefix(value: &str) -> Result<PycachePrefix, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(PycachePrefix::Off);
    }
    let trimmed = value.trim_end_matches('/');
    if !value.starts_with('/') || trimmed.is_empty() || value.contains(['\0', '\n']) {
        return Err(format!(
            "WSGIPythonPycachePrefix: invalid value '{}'; expected Off or an absolute directory other than /",
            value.escape_default()
        ));
    }
    Ok(PycachePrefix::Directory(trimmed.to_owned()))
}

/// `WSGIPythonPath`: absolute directories separated by colons.
pub fn parse_python_path(value: &str) -> Result<Vec<String>, String> {
    let dirs: Vec<String> = value.split(':').filter(|d| !d.is_empty()).map(str::to_owned).collect();
    if dirs.is_empty() {
        return Err("WSGIPythonPath: expected one or more directories separated by ':'".to_owned());
    }
    if let Some(bad) = dirs.iter().find(|d| !d.starts_with('/')) {
        return Err(format!("WSGIPythonPath: '{}' must be an absolute path", bad.escape_default()));
    }
    Ok(dirs)
}

/// `WSGIPythonWarnings`: a warnings filter as for `python -W`,
/// `action:message:category:module:lineno` with everything after the
/// action optional. The action and the line number are checked here; the
/// category is resolved by Python when it starts.
pub fn parse_warning_filter(value: &str) -> Result<String, String> {
    const ACTIONS: [&str; 6] = ["default", "error", "ignore", "always", "module", "once"];
    let fields: Vec<&str> = value.split(':').collect();
    let error = |why: String| Err(format!("WSGIPythonWarnings: invalid filter '{}': {why}", value.escape_default()));
    if fields.len() > 5 {
        return error("expected at most 5 fields, action:message:category:module:lineno".to_owned());
    }
    let action = fields[0].trim();
    if action.is_empty() || !ACTIONS.iter().any(|a| a.starts_with(action)) {
        return error(format!("the action must be one of {}", ACTIONS.join(", ")));
    }
    if let Some(lineno) = fields.get(4).map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if lineno.parse::<u32>().is_err() {
            // Escaped like the whole value above, so that a control
            // character in the field cannot break the error line.
            return error(format!("line number '{}' is not a non-negative integer", lineno.escape_default()));
        }
    }
    Ok(value.to_owned())
}

/// The main interpreter's application group, and the process group of
/// the Apache child itself.
pub const GLOBAL_GROUP: &str = "%{GLOBAL}";

/// How an alias recognises its URLs.
#[derive(Debug, Clone)]
pub enum UrlMatch {
    /// `WSGIScriptAlias`: a URL-path prefix, e.g. `/app` or `/`.
    Prefix(String),
    /// `WSGIScriptAliasMatch`: a regular expression; `$N` in the target
    /// refers to its groups.
    /// Matched against the URI's bytes, as Apache's regular expressions
    /// are: a URI need not be UTF-8.
    Pattern(regex::bytes::Regex),
}

impl PartialEq for UrlMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (UrlMatch::Prefix(a), UrlMatch::Prefix(b)) => a == b,
            (UrlMatch::Pattern(a), UrlMatch::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// A `WSGIScriptAlias` or `WSGIScriptAliasMatch` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptAlias {
    pub url: UrlMatch,
    /// The WSGI script (or, ending in `/`, the directory of scripts) the
    /// URL maps to; for a pattern it may hold `$N` references.
    pub script: String,
    /// `callable-object=`: the name looked up in the script.
    pub callable_object: Option<String>,
    /// `pass-authorization=`: whether apps see the Authorization header.
    pub pass_authorization: Option<bool>,
    /// `process-group=`: wins over `WSGIProcessGroup`, as with mod_wsgi.
    pub process_group: Option<ProcessGroup>,
    /// `application-group=`: wins over `WSGIApplicationGroup`.
    pub application_group: Option<ApplicationGroup>,
}

/// Parses the words of a `WSGIScriptAlias` line (already split the way
/// Apache splits directive arguments, quotes removed).
pub fn parse_script_alias(words: &[&str]) -> Result<ScriptAlias, String> {
    parse_alias_line("WSGIScriptAlias", words)
}

/// Parses the words of a `WSGIScriptAliasMatch` line.
pub fn parse_script_alias_match(words: &[&str]) -> Result<ScriptAlias, String> {
    parse_alias_line("WSGIScriptAliasMatch", words)
}

fn parse_alias_line(directive: &str, words: &[&str]) -> Result<ScriptAlias, String> {
    let pattern = directive.ends_with("Match");
    let (url, script, options) = match words {
        [url, script, options @ ..] => (*url, *script, options),
        _ => {
            return Err(format!(
                "{directive}: expected a URL {} and a script path, got {} argument{}",
                if pattern { "regular expression" } else { "path" },
                words.len(),
                if words.len() == 1 { "" } else { "s" }
            ))
        }
    };
    let url = if pattern {
        UrlMatch::Pattern(regex::bytes::Regex::new(url).map_err(|e| {
            format!("{directive}: invalid regular expression '{url}': {e}")
        })?)
    } else if url.starts_with('/') {
        UrlMatch::Prefix(url.to_owned())
    } else {
        return Err(format!("{directive}: URL path '{url}' must start with '/'"));
    };
    if !script.starts_with('/') {
        return Err(format!("{directive}: script path '{script}' must be absolute"));
    }
    let mut alias = ScriptAlias {
        url,
        script: script.to_owned(),
        callable_object: None,
        pass_authorization: None,
        process_group: None,
        application_group: None,
    };
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!("{directive}: option '{option}' is not of the form key=value"));
        };
        match key {
            "process-group" => {
                alias.process_group =
                    Some(daemon_config::parse_process_group(value).map_err(|e| format!("{directive}: {e}"))?)
            }
            "application-group" => {
                alias.application_group =
                    Some(application_group::parse(value).map_err(|e| format!("{directive}: {e}"))?)
            }
            "callable-object" => {
                alias.callable_object = Some(parse_callable_object(value).map_err(|e| format!("{directive}: {e}"))?);
            }
            "pass-authorization" => {
                alias.pass_authorization = Some(parse_on_off(value).ok_or_else(|| {
                    format!("{directive}: pass-authorization '{value}' must be On or Off")
                })?);
            }
            _ => {
                return Err(format!(
                    "{directive}: unknown option '{key}'; expected process-group, \
                     application-group, callable-object or pass-authorization"
                ))
            }
        }
    }
    Ok(alias)
}

/// `WSGIApplicationGroup`'s argument. Whether a process ends up with two
/// groups is checked once the whole configuration is read (and, for
/// groups that depend on the request, per request).
pub fn parse_application_group(value: &str) -> Result<ApplicationGroup, String> {
    application_group::parse(value).map_err(|e| format!("WSGIApplicationGroup: {e}"))
}

/// `WSGIProcessGroup`'s argument.
pub fn parse_process_group(value: &str) -> Result<ProcessGroup, String> {
    daemon_config::parse_process_group(value).map_err(|e| format!("WSGIProcessGroup: {e}"))
}

/// Why a mod_wsgi directive this module does not implement is refused.
pub fn unsupported_directive_message(directive: &str) -> String {
    let area = match directive {
        "WSGIAcceptMutex" | "WSGILazyInitialization" | "WSGIRestrictProcess" | "WSGISocketRotation" => {
            "this daemon-mode directive"
        }
        _ => "this directive",
    };
    format!(
        "{directive}: mod_wsgi_rs does not support {area} yet; remove the directive \
         (the README lists the mod_wsgi directives mod_wsgi_rs supports)"
    )
}

/// A `WSGIAuthUserScript`, `WSGIAuthGroupScript` or `WSGIAccessScript`
/// line: a script whose functions Apache's authentication, authorisation
/// or access checks call.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthScript {
    pub path: String,
    /// `application-group=`; `%{GLOBAL}` without it, as with mod_wsgi
    /// (not the `WSGIApplicationGroup` of the section).
    pub application_group: ApplicationGroup,
    /// `process-group=`: the daemon process group the functions run in;
    /// `%{GLOBAL}` (the Apache child checking the request) without it,
    /// not the `WSGIProcessGroup` of the section.
    pub process_group: ProcessGroup,
}

/// `WSGIAuthUserScript|WSGIAuthGroupScript|WSGIAccessScript path
/// [application-group=GROUP] [process-group=GROUP]`.
pub fn parse_auth_script(directive: &str, words: &[&str]) -> Result<AuthScript, String> {
    let [path, options @ ..] = words else {
        return Err(format!("{directive}: expected a script path"));
    };
    if !path.starts_with('/') {
        return Err(format!("{directive}: script path '{}' must be absolute", path.escape_default()));
    }
    let mut application_group = ApplicationGroup::Global;
    let mut process_group = ProcessGroup::Global;
    for option in options {
        match option.split_once('=') {
            Some(("application-group", value)) => {
                application_group = application_group::parse(value).map_err(|e| format!("{directive}: {e}"))?;
            }
            // Whether the group exists, and may be used from here, is
            // checked once the whole configuration is read.
            Some(("process-group", value)) => {
                process_group = daemon_config::parse_process_group(value).map_err(|e| format!("{directive}: {e}"))?;
            }
            _ => {
                return Err(format!(
                    "{directive}: unknown option '{}'; expected application-group=... or process-group=...",
                    option.escape_default()
                ))
            }
        }
    }
    Ok(AuthScript { path: (*path).to_owned(), application_group, process_group })
}

/// A callable name (`WSGICallableObject`, `callable-object=`).
pub fn parse_callable_object(value: &str) -> Result<String, String> {
    if is_python_identifier(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("callable object '{}' is not a Python identifier", value.escape_default()))
    }
}

/// An `On`/`Off` directive argument, case-insensitive.
pub fn parse_flag(directive: &str, value: &str) -> Result<bool, String> {
    parse_on_off(value).ok_or_else(|| {
        format!("{directive}: invalid value '{}'; expected On or Off", value.escape_default())
    })
}

/// `WSGIMapHEADToGET`: whether a HEAD request reaches the application as
/// GET, so that output filters which need the body see the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapHeadToGet {
    Off,
    On,
    /// Only when output filters that may depend on the body are present.
    #[default]
    Auto,
}

pub fn parse_map_head_to_get(value: &str) -> Result<MapHeadToGet, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" => Ok(MapHeadToGet::On),
        "off" => Ok(MapHeadToGet::Off),
        "auto" => Ok(MapHeadToGet::Auto),
        _ => Err(format!(
            "WSGIMapHEADToGET: invalid value '{}'; expected On, Off or Auto",
            value.escape_default()
        )),
    }
}

/// A `WSGIImportScript` line.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportScript {
    pub path: String,
    /// Where the script is preloaded; `%{GLOBAL}` (the Apache children)
    /// when the line has no `process-group=`.
    pub process_group: ProcessGroup,
    /// `application-group=`: a name or `%{GLOBAL}`, which the processes
    /// of the group must then host. None: whatever group they host.
    pub application_group: Option<ApplicationGroup>,
}

/// `WSGIImportScript path [process-group=GROUP] [application-group=GROUP]`.
pub fn parse_import_script(words: &[&str]) -> Result<ImportScript, String> {
    let directive = "WSGIImportScript";
    let [path, options @ ..] = words else {
        return Err(format!("{directive}: expected a script path"));
    };
    if !path.starts_with('/') {
        return Err(format!("{directive}: script path '{path}' must be absolute"));
    }
    let mut process_group = ProcessGroup::Global;
    let mut application_group = None;
    for option in options {
        match option.split_once('=') {
            Some(("process-group", value)) => {
                process_group = daemon_config::parse_process_group(value).map_err(|e| format!("{directive}: {e}"))?;
                // There is no request to take the variable from when a
                // process starts.
                if let ProcessGroup::Env(_) = process_group {
                    return Err(format!(
                        "{directive}: process-group '{value}' cannot be used here; a script is imported \
                         when a process starts, with no request to read the variable from, so name the group"
                    ));
                }
            }
            Some(("application-group", value)) => {
                let group = application_group::parse(value).map_err(|e| format!("{directive}: {e}"))?;
                // Also no request to name a group after.
                if group.static_name().is_none() {
                    return Err(format!(
                        "{directive}: application-group '{}' cannot be used here; a script is imported \
                         when a process starts, with no request to take the name from, so name the group \
                         or use %{{GLOBAL}}",
                        value.escape_default()
                    ));
                }
                application_group = Some(group);
            }
            _ => {
                return Err(format!(
                    "{directive}: unknown option '{option}'; expected process-group=... or \
                     application-group=..."
                ))
            }
        }
    }
    Ok(ImportScript { path: (*path).to_owned(), process_group, application_group })
}

/// Per-directory settings (also set at server and virtual-host level,
/// which Apache treats as the outermost directory configuration).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirConfig {
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
    pub script_reloading: Option<bool>,
    pub chunked_request: Option<bool>,
    /// `WSGIPathTranslated`.
    pub path_translated: Option<bool>,
    /// `WSGIExportCGIVariables`.
    pub export_cgi_variables: Option<bool>,
    pub map_head_to_get: Option<MapHeadToGet>,
    /// `WSGIProcessGroup`.
    pub process_group: Option<ProcessGroup>,
    /// `WSGIApplicationGroup`.
    pub application_group: Option<ApplicationGroup>,
    /// `WSGIAuthUserScript`: the `wsgi` authentication provider's script.
    pub auth_user_script: Option<AuthScript>,
    /// `WSGIAuthGroupScript`: what `Require wsgi-group` asks.
    pub auth_group_script: Option<AuthScript>,
    /// `WSGIAccessScript`: the host access check.
    pub access_script: Option<AuthScript>,
    /// `WSGIGroupAuthoritative`: read and kept for configurations written
    /// for mod_wsgi; under Apache 2.4 `Require` lines combine by
    /// `<RequireAny>`/`<RequireAll>`, so it decides nothing (as in mod_wsgi).
    pub group_authoritative: Option<bool>,
}

impl DirConfig {
    /// Settings of an inner section win over the enclosing ones.
    pub fn merge(outer: &DirConfig, inner: &DirConfig) -> DirConfig {
        DirConfig {
            callable_object: inner.callable_object.clone().or_else(|| outer.callable_object.clone()),
            pass_authorization: inner.pass_authorization.or(outer.pass_authorization),
            script_reloading: inner.script_reloading.or(outer.script_reloading),
            chunked_request: inner.chunked_request.or(outer.chunked_request),
            path_translated: inner.path_translated.or(outer.path_translated),
            export_cgi_variables: inner.export_cgi_variables.or(outer.export_cgi_variables),
            map_head_to_get: inner.map_head_to_get.or(outer.map_head_to_get),
            process_group: inner.process_group.clone().or_else(|| outer.process_group.clone()),
            application_group: inner.application_group.clone().or_else(|| outer.application_group.clone()),
            auth_user_script: inner.auth_user_script.clone().or_else(|| outer.auth_user_script.clone()),
            auth_group_script: inner.auth_group_script.clone().or_else(|| outer.auth_group_script.clone()),
            access_script: inner.access_script.clone().or_else(|| outer.access_script.clone()),
            group_authoritative: inner.group_authoritative.or(outer.group_authoritative),
        }
    }
}

/// What the configuration decides for one request, from its alias (if it
/// came through one) and the per-directory settings: an alias option wins
/// over a directive, a directive over the default.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings<'a> {
    pub callable_object: &'a str,
    pub pass_authorization: bool,
    pub script_reloading: bool,
    pub chunked_request: bool,
    /// Whether the environ gets PATH_TRANSLATED, which costs a sub-request
    /// (a second directory walk) for every request with a PATH_INFO.
    pub path_translated: bool,
    /// Whether the CGI variables also go into Apache's table of the
    /// request's environment (`r->subprocess_env`), as mod_wsgi puts them,
    /// for log formats and modules that run after the handler; without,
    /// the environ is made from the request directly.
    pub export_cgi_variables: bool,
    pub map_head_to_get: MapHeadToGet,
    /// Where the request runs: the alias's `process-group=`, else
    /// `WSGIProcessGroup`, else `%{GLOBAL}` (embedded). An `Env` group is
    /// for the caller to resolve from the request.
    pub process_group: &'a ProcessGroup,
    /// The alias's `application-group=`, else `WSGIApplicationGroup`;
    /// None when neither is given (the application then runs in whatever
    /// group its process hosts). For the caller to resolve.
    pub application_group: Option<&'a ApplicationGroup>,
}

/// The default process group, for settings that borrow their values.
static GLOBAL_PROCESS_GROUP: ProcessGroup = ProcessGroup::Global;

impl<'a> RequestSettings<'a> {
    pub fn resolve(alias: Option<&'a ScriptAlias>, dir: &'a DirConfig) -> Self {
        RequestSettings {
            callable_object: alias
                .and_then(ScriptAlias::callable_name)
                .or(dir.callable_object.as_deref())
                .unwrap_or("application"),
            pass_authorization: alias
                .and_then(|a| a.pass_authorization)
                .or(dir.pass_authorization)
                .unwrap_or(false),
            script_reloading: dir.script_reloading.unwrap_or(true),
            chunked_request: dir.chunked_request.unwrap_or(false),
            path_translated: dir.path_translated.unwrap_or(true),
            export_cgi_variables: dir.export_cgi_variables.unwrap_or(true),
            map_head_to_get: dir.map_head_to_get.unwrap_or_default(),
            process_group: alias
                .and_then(|a| a.process_group.as_ref())
                .or(dir.process_group.as_ref())
                .unwrap_or(&GLOBAL_PROCESS_GROUP),
            application_group: alias.and_then(|a| a.application_group.as_ref()).or(dir.application_group.as_ref()),
        }
    }
}

impl ScriptAlias {
    /// Where `uri` leads under this alias, or None when the alias does not
    /// cover it.
    pub fn map_uri<'a>(&'a self, uri: &'a [u8]) -> Option<MappedUri<'a>> {
        let (target, rest) = match &self.url {
            UrlMatch::Prefix(prefix) => {
                let matched = prefix_match(prefix, uri)?;
                // Keep the slash that starts the remainder ("/" + "x" must
                // give "script/x", not "scriptx").
                let rest = if prefix.ends_with('/') { matched - 1 } else { matched };
                (Cow::Borrowed(self.script.as_bytes()), &uri[rest..])
            }
            UrlMatch::Pattern(regex) => {
                let captures = regex.captures(uri)?;
                let end = captures.get(0).map_or(0, |m| m.end());
                (Cow::Owned(expand_groups(&self.script, &captures)), &uri[end..])
            }
        };
        Some(MappedUri { target, rest })
    }

    /// The callable to look up in the script, before per-directory
    /// configuration is considered.
    pub fn callable_name(&self) -> Option<&str> {
        self.callable_object.as_deref()
    }
}

/// A URI mapped by a script alias: the alias's target (a pattern's groups
/// substituted) and what follows the part of the URI the alias matched.
#[derive(Debug, PartialEq)]
pub struct MappedUri<'a> {
    pub target: Cow<'a, [u8]>,
    pub rest: &'a [u8],
}

impl MappedUri<'_> {
    /// The target with the rest appended, as mod_alias maps a ScriptAlias:
    /// Apache's directory walk then finds the script along the path (in a
    /// directory target, the first file) and splits off PATH_INFO. A
    /// directory target ("/srv/scripts/") joins without doubling the slash.
    pub fn joined(&self) -> Vec<u8> {
        let mut target: &[u8] = &self.target;
        if self.rest.starts_with(b"/") {
            while let Some(trimmed) = target.strip_suffix(b"/") {
                target = trimmed;
            }
        }
        [target, self.rest].concat()
    }

    /// The script and PATH_INFO, when the target names the script itself
    /// and the rest is a plain path: given both, the directory walk finds
    /// the script with one stat instead of one per segment of the joined
    /// path (where FollowSymLinks allows), and ends with the same file and
    /// PATH_INFO. A directory target ends with a slash and is joined; one
    /// without it is a directory the walk descends into with the rest, as
    /// it would have for the joined path. A rest with repeated slashes is
    /// left to the walk, which merges them, as before.
    pub fn script_and_path_info(&self) -> Option<(&[u8], &[u8])> {
        let plain = self.rest.starts_with(b"/") && !self.rest.windows(2).any(|pair| pair == b"//");
        (plain && !self.target.ends_with(b"/")).then_some((&self.target, self.rest))
    }
}

/// mod_alias's prefix rule: runs of slashes count as one, and the prefix
/// must end on a path-segment boundary (`/app` covers `/app` and `/app/x`,
/// not `/apple`). Returns how many bytes of `uri` the prefix consumed.
fn prefix_match(prefix: &str, uri_bytes: &[u8]) -> Option<usize> {
    let prefix = prefix.as_bytes();
    let (mut p, mut u) = (0, 0);
    while p < prefix.len() {
        if prefix[p] == b'/' {
            if uri_bytes.get(u) != Some(&b'/') {
                return None;
            }
            while prefix.get(p) == Some(&b'/') {
                p += 1;
            }
            while uri_bytes.get(u) == Some(&b'/') {
                u += 1;
            }
        } else {
            if uri_bytes.get(u) != Some(&prefix[p]) {
                return None;
            }
            p += 1;
            u += 1;
        }
    }
    let ends_on_boundary =
        prefix.last() == Some(&b'/') || u == uri_bytes.len() || uri_bytes[u] == b'/';
    ends_on_boundary.then_some(u)
}

/// Replaces `$0`..`$9` in `target` with the groups of a match (empty for a
/// group that did not take part), as Apache's ap_pregsub does.
fn expand_groups(target: &str, captures: &regex::bytes::Captures<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len());
    let mut bytes = target.bytes().peekable();
    while let Some(b) = bytes.next() {
        match (b, bytes.peek().filter(|d| d.is_ascii_digit())) {
            (b'$', Some(&digit)) => {
                bytes.next();
                out.extend_from_slice(captures.get(usize::from(digit - b'0')).map_or(&b""[..], |m| m.as_bytes()));
            }
            _ => out.push(b),
        }
    }
    out
}

fn parse_on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// Python's own rule (str.isidentifier): '_' or an XID_Start character,
/// then XID_Continue characters. char::is_alphanumeric is not the same
/// class: it takes `x²` (No) and combining marks, and refuses `℘`, a
/// valid start.
fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimize_accepts_exactly_0_1_2() {
        for (text, level) in [("0", 0), ("1", 1), ("2", 2)] {
            assert_eq!(parse_python_optimize(text).unwrap().get(), level);
        }
    }

    #[test]
    fn optimize_rejects_everything_else_naming_value_and_choices() {
        for bad in ["3", "99", "-1", "abc", "On", "1.5", "2abc", "0x2", "", " 1", "+1", "01", "١"] {
            let err = parse_python_optimize(bad).unwrap_err();
            assert!(err.starts_with("WSGIPythonOptimize: invalid value '"), "{err}");
            assert!(err.contains(&format!("'{}'", bad.escape_default())), "{err}");
            assert!(err.ends_with("expected 0, 1 or 2"), "{err}");
        }
    }

    #[test]
    fn optimize_error_escapes_control_characters() {
        let err = parse_python_optimize("1\n2").unwrap_err();
        assert!(err.contains("'1\\n2'"), "{err}");
    }

    fn alias(url: &str) -> ScriptAlias {
        parse_script_alias(&[url, "/srv/app.wsgi"]).unwrap()
    }

    /// The joined file name `uri` maps to under `alias`.
    fn mapped(alias: &ScriptAlias, uri: &str) -> Option<String> {
        alias.map_uri(uri.as_bytes()).map(|m| String::from_utf8(m.joined()).unwrap())
    }

    #[test]
    fn alias_matches_on_segment_boundaries() {
        let a = alias("/app");
        assert_eq!(mapped(&a, "/app").as_deref(), Some("/srv/app.wsgi"));
        assert_eq!(mapped(&a, "/app/").as_deref(), Some("/srv/app.wsgi/"));
        assert_eq!(mapped(&a, "/app/x/y").as_deref(), Some("/srv/app.wsgi/x/y"));
        assert_eq!(mapped(&a, "/apple"), None);
        assert_eq!(mapped(&a, "/ap"), None);
        assert_eq!(mapped(&a, "/other"), None);
    }

    #[test]
    fn alias_collapses_repeated_slashes() {
        assert_eq!(mapped(&alias("/a/b"), "//a///b/c").as_deref(), Some("/srv/app.wsgi/c"));
        assert_eq!(mapped(&alias("/a//b"), "/a/b").as_deref(), Some("/srv/app.wsgi"));
    }

    #[test]
    fn root_alias_matches_everything() {
        let a = alias("/");
        assert_eq!(mapped(&a, "/").as_deref(), Some("/srv/app.wsgi/"));
        assert_eq!(mapped(&a, "/x/y").as_deref(), Some("/srv/app.wsgi/x/y"));
    }

    #[test]
    fn alias_with_trailing_slash_needs_the_slash() {
        let a = alias("/app/");
        assert_eq!(mapped(&a, "/app"), None);
        assert_eq!(mapped(&a, "/app/x").as_deref(), Some("/srv/app.wsgi/x"));
    }

    #[test]
    fn directory_target_joins_without_doubling_slashes() {
        let a = parse_script_alias(&["/scripts", "/srv/scripts/"]).unwrap();
        assert_eq!(mapped(&a, "/scripts/app.wsgi/x").as_deref(), Some("/srv/scripts/app.wsgi/x"));
        assert_eq!(mapped(&a, "/scripts").as_deref(), Some("/srv/scripts/"));
    }

    #[test]
    fn alias_match_substitutes_groups_and_keeps_the_rest() {
        let a = parse_script_alias_match(&["^/wsgi/([^/]+)", "/srv/$1.wsgi"]).unwrap();
        assert_eq!(mapped(&a, "/wsgi/shop/cart").as_deref(), Some("/srv/shop.wsgi/cart"));
        assert_eq!(mapped(&a, "/other/shop"), None);
        let b = parse_script_alias_match(&["^/(a)(b)?", "/srv/$1$2$9.wsgi"]).unwrap();
        assert_eq!(mapped(&b, "/a/x").as_deref(), Some("/srv/a.wsgi/x"));
    }

    #[test]
    fn script_and_path_info_only_for_a_file_target_and_a_plain_rest() {
        let a = alias("/app");
        let split = |alias: &ScriptAlias, uri: &str| {
            let mapped = alias.map_uri(uri.as_bytes())?;
            let (script, path_info) = mapped.script_and_path_info()?;
            Some((String::from_utf8(script.to_vec()).unwrap(), String::from_utf8(path_info.to_vec()).unwrap()))
        };
        assert_eq!(split(&a, "/app/x/y"), Some(("/srv/app.wsgi".into(), "/x/y".into())));
        assert_eq!(split(&a, "/app/"), Some(("/srv/app.wsgi".into(), "/".into())));
        // Nothing to split off; the walk merges repeated slashes itself.
        assert_eq!(split(&a, "/app"), None);
        assert_eq!(split(&a, "/app/x//y"), None);
        let dir = parse_script_alias(&["/scripts", "/srv/scripts/"]).unwrap();
        assert_eq!(split(&dir, "/scripts/app.wsgi/x"), None);
        let pattern = parse_script_alias_match(&["^/wsgi/([^/]+)", "/srv/$1.wsgi"]).unwrap();
        assert_eq!(split(&pattern, "/wsgi/shop/cart"), Some(("/srv/shop.wsgi".into(), "/cart".into())));
    }

    #[test]
    fn alias_match_rejects_bad_regex() {
        let err = parse_script_alias_match(&["^/(x", "/srv/x.wsgi"]).unwrap_err();
        assert!(err.starts_with("WSGIScriptAliasMatch: invalid regular expression '^/(x'"), "{err}");
    }

    #[test]
    fn first_alias_in_order_wins_and_vhost_comes_first() {
        let base = ServerConfig {
            script_aliases: vec![alias("/"), alias("/app")],
            ..Default::default()
        };
        let (found, _) = base.map_uri(b"/app/x").unwrap();
        assert_eq!(found.url, UrlMatch::Prefix("/".into()));
        let vhost = ServerConfig { script_aliases: vec![alias("/app")], ..Default::default() };
        let merged = ServerConfig::merge(&base, &vhost);
        assert_eq!(merged.map_uri(b"/app/x").unwrap().0.url, UrlMatch::Prefix("/app".into()));
        assert_eq!(merged.script_aliases.len(), 3);
    }

    #[test]
    fn script_alias_options() {
        let a = parse_script_alias(&[
            "/x",
            "/srv/x.wsgi",
            "process-group=%{GLOBAL}",
            "application-group=%{GLOBAL}",
            "callable-object=app",
            "pass-authorization=On",
        ])
        .unwrap();
        assert_eq!(a.callable_name(), Some("app"));
        assert_eq!(a.pass_authorization, Some(true));
        assert_eq!(a.process_group, Some(ProcessGroup::Global));
        assert_eq!(a.application_group, Some(ApplicationGroup::Global));
        assert_eq!(alias("/x").application_group, None);
        assert_eq!(alias("/x").callable_name(), None);
        assert_eq!(alias("/x").process_group, None);
        for (value, group) in [
            ("site", ProcessGroup::Named("site".into())),
            ("%{ENV:GROUP}", ProcessGroup::Env("GROUP".into())),
        ] {
            let option = format!("process-group={value}");
            let a = parse_script_alias_match(&["^/x", "/srv/x.wsgi", &option]).unwrap();
            assert_eq!(a.process_group, Some(group));
        }
    }

    #[test]
    fn flags_and_groups() {
        assert_eq!(parse_flag("WSGIChunkedRequest", "on"), Ok(true));
        assert_eq!(parse_flag("WSGIChunkedRequest", "OFF"), Ok(false));
        assert_eq!(
            parse_flag("WSGIChunkedRequest", "yes").unwrap_err(),
            "WSGIChunkedRequest: invalid value 'yes'; expected On or Off"
        );
        assert_eq!(parse_map_head_to_get("AUTO"), Ok(MapHeadToGet::Auto));
        assert!(parse_map_head_to_get("maybe").unwrap_err().contains("expected On, Off or Auto"));
        assert_eq!(parse_application_group("%{GLOBAL}"), Ok(ApplicationGroup::Global));
        assert_eq!(parse_application_group("site"), Ok(ApplicationGroup::Named("site".into())));
        assert_eq!(parse_application_group("%{ENV:G}"), Ok(ApplicationGroup::Env("G".into())));
        for bad in ["%{global}", "%{ENV:}", "%site"] {
            let err = parse_application_group(bad).unwrap_err();
            assert!(err.starts_with(&format!("WSGIApplicationGroup: invalid application group '{bad}'")), "{err}");
        }
        assert_eq!(parse_process_group("%{GLOBAL}"), Ok(ProcessGroup::Global));
        assert_eq!(parse_process_group("site"), Ok(ProcessGroup::Named("site".into())));
        assert_eq!(parse_process_group("%{ENV:G}"), Ok(ProcessGroup::Env("G".into())));
        assert!(parse_process_group("%{SERVER}").unwrap_err().starts_with("WSGIProcessGroup: invalid process group '%{SERVER}'"));
        assert_eq!(parse_callable_object("app"), Ok("app".to_owned()));
        assert!(parse_callable_object("my-app").is_err());
    }

    #[test]
    fn import_script() {
        let global =
            |path: &str| ImportScript { path: path.to_owned(), process_group: ProcessGroup::Global, application_group: None };
        assert_eq!(parse_import_script(&["/srv/a.wsgi", "process-group=%{GLOBAL}"]), Ok(global("/srv/a.wsgi")));
        assert_eq!(parse_import_script(&["/srv/a.wsgi"]), Ok(global("/srv/a.wsgi")));
        assert_eq!(
            parse_import_script(&["/srv/a.wsgi", "process-group=site", "application-group=%{GLOBAL}"]),
            Ok(ImportScript {
                path: "/srv/a.wsgi".into(),
                process_group: ProcessGroup::Named("site".into()),
                application_group: Some(ApplicationGroup::Global)
            })
        );
        let named = parse_import_script(&["/srv/a.wsgi", "application-group=site"]).unwrap();
        assert_eq!(named.application_group, Some(ApplicationGroup::Named("site".into())));
        for per_request in ["%{RESOURCE}", "%{SERVER}", "%{HOST}", "%{ENV:G}"] {
            let err = parse_import_script(&["/srv/a.wsgi", &format!("application-group={per_request}")]).unwrap_err();
            assert!(err.starts_with(&format!("WSGIImportScript: application-group '{per_request}' cannot be used here")), "{err}");
        }
        let env = parse_import_script(&["/srv/a.wsgi", "process-group=%{ENV:G}"]).unwrap_err();
        assert!(env.starts_with("WSGIImportScript: process-group '%{ENV:G}' cannot be used here"), "{env}");
        let bad = parse_import_script(&["/srv/a.wsgi", "process-group=%{RESOURCE}"]).unwrap_err();
        assert!(bad.starts_with("WSGIImportScript: invalid process group '%{RESOURCE}'"), "{bad}");
        assert!(parse_import_script(&["a.wsgi"]).unwrap_err().contains("must be absolute"));
        assert!(parse_import_script(&["/srv/a.wsgi", "application-group=%x"]).unwrap_err().contains("invalid application group '%x'"));
        assert!(parse_import_script(&["/srv/a.wsgi", "x=y"]).unwrap_err().contains("unknown option"));
        assert!(parse_import_script(&[]).is_err());
    }

    #[test]
    fn inner_directory_settings_win() {
        let outer = DirConfig {
            callable_object: Some("a".into()),
            chunked_request: Some(true),
            process_group: Some(ProcessGroup::Named("outer".into())),
            ..Default::default()
        };
        let inner = DirConfig { callable_object: Some("b".into()), ..Default::default() };
        let merged = DirConfig::merge(&outer, &inner);
        assert_eq!(merged.callable_object.as_deref(), Some("b"));
        assert_eq!(merged.chunked_request, Some(true));
        assert_eq!(merged.process_group, Some(ProcessGroup::Named("outer".into())));
        let inner = DirConfig { process_group: Some(ProcessGroup::Global), ..Default::default() };
        assert_eq!(DirConfig::merge(&outer, &inner).process_group, Some(ProcessGroup::Global));
    }

    #[test]
    fn request_settings_prefer_alias_then_directory_then_default() {
        let dir = DirConfig::default();
        let defaults = RequestSettings::resolve(None, &dir);
        assert_eq!(
            defaults,
            RequestSettings {
                callable_object: "application",
                pass_authorization: false,
                script_reloading: true,
                chunked_request: false,
                path_translated: true,
                export_cgi_variables: true,
                map_head_to_get: MapHeadToGet::Auto,
                process_group: &ProcessGroup::Global,
                application_group: None,
            }
        );
        let dir = DirConfig {
            callable_object: Some("dir_app".into()),
            pass_authorization: Some(true),
            script_reloading: Some(false),
            chunked_request: Some(true),
            path_translated: Some(false),
            export_cgi_variables: Some(false),
            map_head_to_get: Some(MapHeadToGet::Off),
            process_group: Some(ProcessGroup::Named("dir_group".into())),
            application_group: Some(ApplicationGroup::Named("dir_app_group".into())),
            ..Default::default()
        };
        let from_dir = RequestSettings::resolve(None, &dir);
        assert_eq!(from_dir.callable_object, "dir_app");
        assert!(from_dir.pass_authorization && !from_dir.script_reloading && from_dir.chunked_request);
        assert!(!from_dir.path_translated && !from_dir.export_cgi_variables);
        assert_eq!(from_dir.map_head_to_get, MapHeadToGet::Off);
        assert_eq!(from_dir.process_group, &ProcessGroup::Named("dir_group".into()));
        assert_eq!(from_dir.application_group, Some(&ApplicationGroup::Named("dir_app_group".into())));
        let alias = parse_script_alias(&["/x", "/s", "callable-object=alias_app", "pass-authorization=Off"]).unwrap();
        let from_alias = RequestSettings::resolve(Some(&alias), &dir);
        assert_eq!(from_alias.callable_object, "alias_app");
        assert!(!from_alias.pass_authorization);
        // An alias without process-group= leaves WSGIProcessGroup in force,
        // and without application-group= WSGIApplicationGroup.
        assert_eq!(from_alias.process_group, &ProcessGroup::Named("dir_group".into()));
        assert_eq!(from_alias.application_group, dir.application_group.as_ref());
        let alias = parse_script_alias(&["/x", "/s", "application-group=%{RESOURCE}"]).unwrap();
        assert_eq!(RequestSettings::resolve(Some(&alias), &dir).application_group, Some(&ApplicationGroup::Resource));
        for value in ["%{GLOBAL}", "alias_group", "%{ENV:G}"] {
            let option = format!("process-group={value}");
            let alias = parse_script_alias(&["/x", "/s", &option]).unwrap();
            assert_eq!(RequestSettings::resolve(Some(&alias), &dir).process_group.to_string(), value);
        }
    }

    #[test]
    fn auth_script_takes_a_path_and_an_application_group() {
        let script = parse_auth_script("WSGIAuthUserScript", &["/srv/auth.wsgi"]).unwrap();
        assert_eq!(
            script,
            AuthScript {
                path: "/srv/auth.wsgi".into(),
                application_group: ApplicationGroup::Global,
                process_group: ProcessGroup::Global
            }
        );
        let script =
            parse_auth_script("WSGIAccessScript", &["/a.wsgi", "application-group=site", "process-group=%{GLOBAL}"])
                .unwrap();
        assert_eq!(script.application_group, ApplicationGroup::Named("site".into()));
        assert_eq!(script.process_group, ProcessGroup::Global);
        let script = parse_auth_script("WSGIAuthUserScript", &["/a.wsgi", "process-group=site"]).unwrap();
        assert_eq!(script.process_group, ProcessGroup::Named("site".into()));
        let script = parse_auth_script("WSGIAuthUserScript", &["/a.wsgi", "process-group=%{ENV:G}"]).unwrap();
        assert_eq!(script.process_group, ProcessGroup::Env("G".into()));
        let script = parse_auth_script("WSGIAuthGroupScript", &["/a.wsgi", "application-group=%{SERVER}"]).unwrap();
        assert_eq!(script.application_group, ApplicationGroup::Server);
    }

    #[test]
    fn auth_script_refuses_what_it_cannot_do() {
        let err = |words: &[&str]| parse_auth_script("WSGIAuthUserScript", words).unwrap_err();
        assert_eq!(err(&[]), "WSGIAuthUserScript: expected a script path");
        assert!(err(&["auth.wsgi"]).contains("'auth.wsgi' must be absolute"));
        let daemon = err(&["/a.wsgi", "process-group=%{SERVER}"]);
        assert!(daemon.starts_with("WSGIAuthUserScript: invalid process group '%{SERVER}'"), "{daemon}");
        let unknown = err(&["/a.wsgi", "callable-object=x"]);
        assert!(unknown.starts_with("WSGIAuthUserScript: unknown option 'callable-object=x'"), "{unknown}");
        assert!(err(&["/a.wsgi", "application-group=%{global}"]).contains("invalid application group"));
    }

    #[test]
    fn auth_scripts_are_inherited_by_inner_sections() {
        let script = parse_auth_script("WSGIAuthUserScript", &["/a.wsgi"]).unwrap();
        let outer = DirConfig { auth_user_script: Some(script.clone()), group_authoritative: Some(false), ..Default::default() };
        let inner = DirConfig { access_script: Some(script.clone()), ..Default::default() };
        let merged = DirConfig::merge(&outer, &inner);
        assert_eq!(merged.auth_user_script.as_ref(), Some(&script));
        assert_eq!(merged.access_script.as_ref(), Some(&script));
        assert_eq!((merged.auth_group_script, merged.group_authoritative), (None, Some(false)));
    }

    #[test]
    fn unsupported_directives_say_so() {
        let daemon = unsupported_directive_message("WSGISocketRotation");
        assert!(
            daemon.starts_with("WSGISocketRotation: mod_wsgi_rs does not support this daemon-mode directive yet"),
            "{daemon}"
        );
        let other = unsupported_directive_message("WSGIPythonEggs");
        assert!(other.starts_with("WSGIPythonEggs: mod_wsgi_rs does not support this directive yet"), "{other}");
    }

    #[test]
    fn main_server_only_daemon_settings_reach_virtual_hosts() {
        let base = ServerConfig {
            socket_prefix: Some("/run/wsgi".into()),
            restrict_embedded: Some(true),
            daemon_groups: vec![DaemonGroup::with_defaults("site")],
            import_scripts: vec![ImportScript { path: "/a".into(), process_group: ProcessGroup::Global, application_group: None }],
            ..Default::default()
        };
        let vhost = ServerConfig {
            import_scripts: vec![ImportScript {
                path: "/b".into(),
                process_group: ProcessGroup::Named("site".into()),
                application_group: None,
            }],
            ..Default::default()
        };
        let merged = ServerConfig::merge(&base, &vhost);
        assert_eq!((merged.socket_prefix.as_deref(), merged.restrict_embedded), (Some("/run/wsgi"), Some(true)));
        assert!(merged.daemon_groups.is_empty());
        let paths: Vec<&str> = merged.import_scripts.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b"]);
    }

    #[test]
    fn static_application_groups_are_looked_up_by_process_group() {
        let site = ProcessGroup::Named("site".into());
        let config = ServerConfig {
            static_application_groups: vec![(site.clone(), "shop".into()), (ProcessGroup::Global, String::new())],
            ..Default::default()
        };
        assert_eq!(config.static_application_group(&site), Some("shop"));
        assert_eq!(config.static_application_group(&ProcessGroup::Global), Some(""));
        assert_eq!(config.static_application_group(&ProcessGroup::Named("blog".into())), None);
        // Virtual hosts' copies do not carry them.
        assert!(ServerConfig::merge(&config, &ServerConfig::default()).static_application_groups.is_empty());
    }

    #[test]
    fn hash_seed_is_random_or_a_u32() {
        assert_eq!(parse_hash_seed("random"), Ok(HashSeed::Random));
        assert_eq!(parse_hash_seed("0"), Ok(HashSeed::Fixed(0)));
        assert_eq!(parse_hash_seed("4294967295"), Ok(HashSeed::Fixed(u32::MAX)));
        for bad in ["4294967296", "-1", "+1", "Random", "", "1.0", "0x10", " 1"] {
            let err = parse_hash_seed(bad).unwrap_err();
            assert!(err.contains(&format!("'{}'", bad.escape_default())) && err.contains("0 to 4294967295"), "{err}");
        }
    }

    #[test]
    fn python_home_and_path_must_be_absolute() {
        assert_eq!(parse_python_home("/srv/venv/"), Ok("/srv/venv".to_owned()));
        assert!(parse_python_home("venv").unwrap_err().contains("absolute"));
        assert_eq!(parse_python_path("/a:/b::/c"), Ok(vec!["/a".into(), "/b".into(), "/c".into()]));
        assert!(parse_python_path("/a:b").unwrap_err().contains("'b' must be an absolute path"));
        assert!(parse_python_path(":").is_err());
    }

    #[test]
    fn callable_object_follows_python_identifier_rules() {
        for good in ["app", "_app", "app2", "\u{43f}\u{440}\u{438}\u{43b}", "\u{2118}", "a\u{301}"] {
            assert_eq!(parse_callable_object(good), Ok(good.to_owned()), "{good}");
        }
        // x² and a leading combining mark: alphanumeric to Rust, not
        // identifiers to Python.
        for bad in ["x\u{b2}", "\u{345}a", "2app", "my-app", "", "a b"] {
            assert!(parse_callable_object(bad).unwrap_err().contains("not a Python identifier"), "{bad}");
        }
    }

    #[test]
    fn warning_filter_error_escapes_the_line_number() {
        let err = parse_warning_filter("d::::\0\r\n7").unwrap_err();
        assert!(err.contains("line number '\\u{0}\\r\\n7'"), "{err}");
        assert!(!err.contains(['\0', '\r', '\n']), "{err:?}");
    }

    #[test]
    fn warning_filters() {
        for good in ["ignore", "ignore::DeprecationWarning", "error:::mod:12", "d", "once:msg"] {
            assert_eq!(parse_warning_filter(good), Ok(good.to_owned()));
        }
        for bad in ["", "loud", "ignore::X:m:twelve", "a:b:c:d:e:f"] {
            assert!(parse_warning_filter(bad).unwrap_err().starts_with("WSGIPythonWarnings: invalid filter"), "{bad}");
        }
    }

    #[test]
    fn pycache_prefix_is_off_or_an_absolute_directory() {
        assert_eq!(parse_pycache_prefix("Off"), Ok(PycachePrefix::Off));
        assert_eq!(parse_pycache_prefix("off"), Ok(PycachePrefix::Off));
        assert_eq!(parse_pycache_prefix("/var/cache/x//"), Ok(PycachePrefix::Directory("/var/cache/x".into())));
        for bad in ["", "/", "//", "relative/dir", "On", "/a\nb", "/a\0b"] {
            let err = parse_pycache_prefix(bad).unwrap_err();
            assert!(err.starts_with("WSGIPythonPycachePrefix: invalid value '"), "{bad:?}: {err}");
            assert!(err.contains("expected Off or an absolute directory"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{bad:?}: unescaped value in {err}");
        }
        let mut c = InterpreterConfig::default();
        c.set("WSGIPythonPycachePrefix", "/srv/pyc").unwrap();
        assert_eq!(c.given(), ["WSGIPythonPycachePrefix /srv/pyc"]);
    }

    #[test]
    fn interpreter_directives_dispatch_and_list_what_was_given() {
        let mut c = InterpreterConfig::default();
        c.set("WSGIPythonHome", "/srv/venv").unwrap();
        c.set("WSGIPythonWarnings", "ignore").unwrap();
        c.set("WSGIPythonWarnings", "error::UserWarning").unwrap();
        c.set("WSGIRestrictSignal", "off").unwrap();
        assert!(c.set("WSGIDestroyInterpreter", "maybe").unwrap_err().contains("expected On or Off"));
        assert_eq!(
            c.given(),
            ["WSGIPythonHome /srv/venv", "WSGIPythonWarnings ignore", "WSGIPythonWarnings error::UserWarning", "WSGIRestrictSignal Off"]
        );
    }

    #[test]
    fn script_alias_rejects_bad_input() {
        let cases: &[(&[&str], &str)] = &[
            (&["/x"], "expected a URL path and a script path, got 1 argument"),
            (&["x", "/srv/x.wsgi"], "must start with '/'"),
            (&["/x", "x.wsgi"], "must be absolute"),
            (&["/x", "/s", "oops"], "not of the form key=value"),
            (&["/x", "/s", "colour=red"], "unknown option 'colour'"),
            (&["/x", "/s", "process-group=%{RESOURCE}"], "WSGIScriptAlias: invalid process group '%{RESOURCE}'"),
            (&["/x", "/s", "process-group="], "WSGIScriptAlias: invalid process group ''"),
            (&["/x", "/s", "application-group=%{nope}"], "WSGIScriptAlias: invalid application group '%{nope}'"),
            (&["/x", "/s", "callable-object=1x"], "not a Python identifier"),
            (&["/x", "/s", "pass-authorization=yes"], "must be On or Off"),
        ];
        for (words, expected) in cases {
            let err = parse_script_alias(words).unwrap_err();
            assert!(err.contains(expected), "{words:?}: {err}");
        }
    }
}
