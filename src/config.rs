//! The module's configuration as plain Rust: values parsed and validated
//! here, with no Apache calls, so every rule is unit-tested. The glue that
//! receives directives from Apache is in directives.rs.

use std::fmt;

/// Per-server configuration. Interpreter settings are only ever read from
/// the main server's copy; aliases are per virtual host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerConfig {
    /// `WSGIPythonOptimize`; `None` when the directive was not given.
    pub python_optimize: Option<OptimizeLevel>,
    /// `WSGIScriptAlias` entries in configuration order.
    pub script_aliases: Vec<ScriptAlias>,
}

impl ServerConfig {
    /// A virtual host sees its own aliases first, then the main server's,
    /// as with mod_alias: first match in that order wins.
    pub fn merge(base: &ServerConfig, vhost: &ServerConfig) -> ServerConfig {
        let mut script_aliases = vhost.script_aliases.clone();
        script_aliases.extend(base.script_aliases.iter().cloned());
        ServerConfig {
            python_optimize: vhost.python_optimize.or(base.python_optimize),
            script_aliases,
        }
    }

    /// The first alias whose URL prefix matches `uri`, with the number of
    /// bytes of `uri` the prefix covered.
    pub fn find_alias(&self, uri: &str) -> Option<(&ScriptAlias, usize)> {
        self.script_aliases
            .iter()
            .find_map(|alias| alias.matches(uri).map(|len| (alias, len)))
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

/// The one application group and process group this module has: the main
/// interpreter of the Apache child itself.
pub const GLOBAL_GROUP: &str = "%{GLOBAL}";

/// A `WSGIScriptAlias URL-path file-path [options]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptAlias {
    /// The URL prefix, e.g. `/app` or `/`.
    pub url: String,
    /// The WSGI script the prefix maps to.
    pub script: String,
    /// `callable-object=`: the name looked up in the script.
    pub callable_object: Option<String>,
    /// `pass-authorization=`: whether apps see the Authorization header.
    pub pass_authorization: Option<bool>,
}

/// Parses the words of a `WSGIScriptAlias` line (already split the way
/// Apache splits directive arguments, quotes removed).
pub fn parse_script_alias(words: &[&str]) -> Result<ScriptAlias, String> {
    let (url, script, options) = match words {
        [url, script, options @ ..] => (*url, *script, options),
        _ => {
            return Err(format!(
                "WSGIScriptAlias: expected a URL path and a script path, got {} argument{}",
                words.len(),
                if words.len() == 1 { "" } else { "s" }
            ))
        }
    };
    if !url.starts_with('/') {
        return Err(format!(
            "WSGIScriptAlias: URL path '{url}' must start with '/'"
        ));
    }
    if !script.starts_with('/') {
        return Err(format!(
            "WSGIScriptAlias: script path '{script}' must be absolute"
        ));
    }
    let mut alias = ScriptAlias {
        url: url.to_owned(),
        script: script.to_owned(),
        callable_object: None,
        pass_authorization: None,
    };
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!(
                "WSGIScriptAlias: option '{option}' is not of the form key=value"
            ));
        };
        match key {
            "process-group" | "application-group" => {
                if value != GLOBAL_GROUP {
                    return Err(format!(
                        "WSGIScriptAlias: {key}={value} is not supported; every application \
                         runs in the main interpreter of the Apache child, so only \
                         {key}={GLOBAL_GROUP} is accepted"
                    ));
                }
            }
            "callable-object" => {
                if !is_python_identifier(value) {
                    return Err(format!(
                        "WSGIScriptAlias: callable-object '{value}' is not a Python identifier"
                    ));
                }
                alias.callable_object = Some(value.to_owned());
            }
            "pass-authorization" => {
                alias.pass_authorization = Some(parse_on_off(value).ok_or_else(|| {
                    format!("WSGIScriptAlias: pass-authorization '{value}' must be On or Off")
                })?);
            }
            _ => {
                return Err(format!(
                    "WSGIScriptAlias: unknown option '{key}'; expected process-group, \
                     application-group, callable-object or pass-authorization"
                ))
            }
        }
    }
    Ok(alias)
}

impl ScriptAlias {
    /// Whether this alias covers `uri`, with mod_alias's rules: runs of
    /// slashes count as one, and the prefix must end on a path-segment
    /// boundary (`/app` covers `/app` and `/app/x`, not `/apple`). Returns
    /// how many bytes of `uri` the prefix consumed.
    pub fn matches(&self, uri: &str) -> Option<usize> {
        let prefix = self.url.as_bytes();
        let uri_bytes = uri.as_bytes();
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
        let ends_on_boundary = prefix.last() == Some(&b'/')
            || u == uri_bytes.len()
            || uri_bytes[u] == b'/';
        ends_on_boundary.then_some(u)
    }

    /// The callable to look up in the script.
    pub fn callable_name(&self) -> &str {
        self.callable_object.as_deref().unwrap_or("application")
    }
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

fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
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

    #[test]
    fn alias_matches_on_segment_boundaries() {
        let a = alias("/app");
        assert_eq!(a.matches("/app"), Some(4));
        assert_eq!(a.matches("/app/"), Some(4));
        assert_eq!(a.matches("/app/x/y"), Some(4));
        assert_eq!(a.matches("/apple"), None);
        assert_eq!(a.matches("/ap"), None);
        assert_eq!(a.matches("/other"), None);
    }

    #[test]
    fn alias_collapses_repeated_slashes() {
        assert_eq!(alias("/a/b").matches("//a///b/c"), Some(7));
        assert_eq!(alias("/a//b").matches("/a/b"), Some(4));
    }

    #[test]
    fn root_alias_matches_everything() {
        let a = alias("/");
        assert_eq!(a.matches("/"), Some(1));
        assert_eq!(a.matches("/x/y"), Some(1));
    }

    #[test]
    fn alias_with_trailing_slash_needs_the_slash() {
        let a = alias("/app/");
        assert_eq!(a.matches("/app"), None);
        assert_eq!(a.matches("/app/x"), Some(5));
    }

    #[test]
    fn first_alias_in_order_wins_and_vhost_comes_first() {
        let base = ServerConfig {
            script_aliases: vec![alias("/"), alias("/app")],
            ..Default::default()
        };
        let (found, _) = base.find_alias("/app/x").unwrap();
        assert_eq!(found.url, "/");
        let vhost = ServerConfig { script_aliases: vec![alias("/app")], ..Default::default() };
        let merged = ServerConfig::merge(&base, &vhost);
        assert_eq!(merged.find_alias("/app/x").unwrap().0.url, "/app");
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
        assert_eq!(a.callable_name(), "app");
        assert_eq!(a.pass_authorization, Some(true));
        assert_eq!(alias("/x").callable_name(), "application");
    }

    #[test]
    fn script_alias_rejects_bad_input() {
        let cases: &[(&[&str], &str)] = &[
            (&["/x"], "expected a URL path and a script path, got 1 argument"),
            (&["x", "/srv/x.wsgi"], "must start with '/'"),
            (&["/x", "x.wsgi"], "must be absolute"),
            (&["/x", "/s", "oops"], "not of the form key=value"),
            (&["/x", "/s", "colour=red"], "unknown option 'colour'"),
            (&["/x", "/s", "process-group=site"], "only process-group=%{GLOBAL}"),
            (&["/x", "/s", "application-group=a"], "main interpreter"),
            (&["/x", "/s", "callable-object=1x"], "not a Python identifier"),
            (&["/x", "/s", "pass-authorization=yes"], "must be On or Off"),
        ];
        for (words, expected) in cases {
            let err = parse_script_alias(words).unwrap_err();
            assert!(err.contains(expected), "{words:?}: {err}");
        }
    }
}
