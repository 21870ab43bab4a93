//! WSGIScriptAlias and WSGIScriptAliasMatch, and the mapping of a URI
//! through the alias. The input's first line is the URI; the other lines
//! are the directive's words (which never hold a newline). Both
//! directives parse the same words.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;
// config.rs refers to the daemon-mode and application-group types.
#[allow(dead_code)]
#[path = "../../src/daemon_config.rs"]
mod daemon_config;
#[allow(dead_code)]
#[path = "../../src/daemon_lifecycle.rs"]
mod daemon_lifecycle;
#[allow(dead_code)]
#[path = "../../src/application_group.rs"]
mod application_group;

#[path = "expected_application_group.rs"]
mod expected;

use config::{ScriptAlias, ServerConfig, UrlMatch};
use expected::expected_application_group;
use daemon_config::ProcessGroup;

fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
}

fn on_off(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// What a valid line sets through its options (the last one of a kind
/// wins), or None when an option is invalid.
fn expected_options(options: &[&str]) -> Option<(Option<String>, Option<bool>, Option<ProcessGroup>)> {
    let (mut callable, mut pass, mut group) = (None, None, None);
    for option in options {
        let (key, value) = option.split_once('=')?;
        match key {
            "application-group" if expected_application_group(value).is_some() => {}
            "process-group" => group = Some(expected_process_group(value)?),
            "callable-object" if is_python_identifier(value) => callable = Some(value.to_owned()),
            "pass-authorization" => pass = Some(on_off(value)?),
            _ => return None,
        }
    }
    Some((callable, pass, group))
}

/// What a process-group value means, written independently of the
/// parser: %{GLOBAL}, %{ENV:VARIABLE}, or a group name (no spaces,
/// controls or '=', not of the form %{...}).
fn expected_process_group(value: &str) -> Option<ProcessGroup> {
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if value == "%{GLOBAL}" {
        return Some(ProcessGroup::Global);
    }
    if let Some(variable) = value.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}')) {
        return (plain(variable) && !variable.contains(['{', '}'])).then(|| ProcessGroup::Env(variable.to_owned()));
    }
    (plain(value) && !value.starts_with("%{") && !value.contains('=')).then(|| ProcessGroup::Named(value.to_owned()))
}


/// Runs of slashes as one slash, as the prefix rule compares paths.
fn collapse(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// The directory-join rule: a target ending in '/' loses it before a
/// remainder that starts with '/'.
fn join(target: &str, rest: &str) -> String {
    let target = if rest.starts_with('/') { target.trim_end_matches('/') } else { target };
    format!("{target}{rest}")
}

/// The file name `uri` maps to under `alias`; where the mapping also
/// gives the script and PATH_INFO apart, they make the same name.
/// (Bytes: a pattern without Unicode may split a character.)
fn mapped_file(alias: &ScriptAlias, uri: &str) -> Option<Vec<u8>> {
    let mapped = alias.map_uri(uri.as_bytes())?;
    let file = mapped.joined();
    if let Some((script, path_info)) = mapped.script_and_path_info() {
        assert_eq!([script, path_info].concat(), file, "{uri:?}");
        assert!(path_info.starts_with(b"/") && !script.ends_with(b"/"), "{uri:?} split as {script:?} {path_info:?}");
    }
    Some(file)
}

fn check_prefix_mapping(alias: &ScriptAlias, prefix: &str, uri: &str) {
    let (p, u) = (collapse(prefix), collapse(uri));
    let covered = u.starts_with(&p)
        && (p.ends_with('/') || u.len() == p.len() || u.as_bytes()[p.len()] == b'/');
    match mapped_file(alias, uri) {
        None => assert!(!covered, "{prefix:?} does not cover {uri:?}"),
        Some(file) => {
            assert!(covered, "{prefix:?} covers {uri:?} as {file:?}");
            // The file is the target plus a remainder of the URI that,
            // after the prefix, spells the whole URI again: nothing of the
            // URI is lost or duplicated.
            let found = (0..=uri.len()).filter(|&k| uri.is_char_boundary(k)).any(|k| {
                let rest = &uri[k..];
                (rest.is_empty() || rest.starts_with('/'))
                    && file.ends_with(rest.as_bytes())
                    && file == join(&alias.script, rest).into_bytes()
                    && collapse(&format!("{prefix}{rest}")) == u
            });
            assert!(found, "{prefix:?} maps {uri:?} to {file:?}");
        }
    }
}

fn check_pattern_mapping(alias: &ScriptAlias, regex: &regex::bytes::Regex, uri: &str) {
    match mapped_file(alias, uri) {
        None => assert!(!regex.is_match(uri.as_bytes()), "{regex} matches {uri:?}"),
        Some(file) => {
            let matched = regex.find(uri.as_bytes()).expect("the alias matched, so the regex does");
            let rest = &uri.as_bytes()[matched.end()..];
            // The part after the match is kept, as PATH_INFO.
            assert!(file.ends_with(rest), "{regex} maps {uri:?} to {file:?}");
            if !alias.script.contains('$') {
                let target: &[u8] = if rest.starts_with(b"/") { alias.script.trim_end_matches('/').as_bytes() } else { alias.script.as_bytes() };
                assert_eq!(file, [target, rest].concat());
            }
        }
    }
}

fn check(directive: &str, result: Result<ScriptAlias, String>, words: &[&str], uri: &str) {
    let pattern = directive == "WSGIScriptAliasMatch";
    let url_ok = |url: &str| {
        if pattern {
            regex::bytes::Regex::new(url).is_ok()
        } else {
            url.starts_with('/')
        }
    };
    let expected = match words {
        [url, script, options @ ..] if url_ok(url) && script.starts_with('/') => expected_options(options),
        _ => None,
    };
    match result {
        Ok(alias) => {
            let Some((callable, pass, group)) = expected else { panic!("{directive} {words:?} accepted") };
            assert_eq!(alias.script, words[1]);
            assert_eq!(alias.process_group, group);
            assert_eq!(alias.callable_object, callable);
            assert_eq!(alias.callable_name(), alias.callable_object.as_deref());
            assert_eq!(alias.pass_authorization, pass);
            match &alias.url {
                UrlMatch::Prefix(prefix) => {
                    assert!(!pattern);
                    assert_eq!(prefix, words[0]);
                    check_prefix_mapping(&alias, prefix, uri);
                }
                UrlMatch::Pattern(regex) => {
                    assert!(pattern);
                    assert_eq!(regex.as_str(), words[0]);
                    check_pattern_mapping(&alias, regex, uri);
                }
            }
            // A server's aliases are tried in order: the first that
            // covers the URI answers.
            let server = ServerConfig { script_aliases: vec![alias.clone(), alias.clone()], ..Default::default() };
            let mapped = server.map_uri(uri.as_bytes()).map(|(a, file)| (a.clone(), file));
            assert_eq!(mapped, alias.map_uri(uri.as_bytes()).map(|file| (alias.clone(), file)));
        }
        Err(message) => {
            assert!(expected.is_none(), "{directive} {words:?} rejected: {message}");
            assert!(message.starts_with(&format!("{directive}: ")), "{message}");
        }
    }
}

fuzz_target!(|input: &str| {
    let mut lines = input.split('\n');
    let uri = lines.next().unwrap_or("");
    let words: Vec<&str> = lines.collect();
    check("WSGIScriptAlias", config::parse_script_alias(&words), &words, uri);
    check("WSGIScriptAliasMatch", config::parse_script_alias_match(&words), &words, uri);
});
