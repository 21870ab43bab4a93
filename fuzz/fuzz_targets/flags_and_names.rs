//! The one-word directives: the On/Off flags, WSGIMapHEADToGET,
//! WSGIApplicationGroup, WSGIProcessGroup and WSGICallableObject, all fed
//! the same fuzzed value.
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

use config::{InterpreterConfig, MapHeadToGet};
use expected::expected_application_group;
use daemon_config::ProcessGroup;

const FLAG_DIRECTIVES: [&str; 9] = [
    "WSGIDontWriteBytecode",
    "WSGIRestrictStdout",
    "WSGIRestrictStdin",
    "WSGIRestrictSignal",
    "WSGIDestroyInterpreter",
    "WSGIScriptReloading",
    "WSGIChunkedRequest",
    "WSGIPassAuthorization",
    "WSGIEnableSendfile",
];

/// The value with ASCII letters lowered (the only case-folding the
/// directives promise: `ON`, `On`, `on`, but not a Unicode look-alike).
fn ascii_lower(value: &str) -> Vec<u8> {
    value.bytes().map(|b| if b.is_ascii_uppercase() { b + 32 } else { b }).collect()
}

/// str.isidentifier(): XID_Start or '_' first, XID_Continue after.
fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
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

fuzz_target!(|value: &str| {
    let lower = ascii_lower(value);

    let expected_flag = match lower.as_slice() {
        b"on" => Some(true),
        b"off" => Some(false),
        _ => None,
    };
    for directive in FLAG_DIRECTIVES {
        match config::parse_flag(directive, value) {
            Ok(flag) => assert_eq!(Some(flag), expected_flag, "{directive} {value:?}"),
            Err(message) => {
                assert_eq!(expected_flag, None, "{directive} {value:?}: {message}");
                assert!(message.starts_with(&format!("{directive}: ")), "{message}");
                assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
                assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
            }
        }
    }

    // The interpreter flags, set through the table the Apache glue uses,
    // show up in the summary line as the canonical On/Off.
    for directive in &FLAG_DIRECTIVES[..5] {
        let mut interpreter = InterpreterConfig::default();
        match interpreter.set(directive, value) {
            Ok(()) => {
                let shown = if expected_flag == Some(true) { "On" } else { "Off" };
                assert_eq!(interpreter.given(), vec![format!("{directive} {shown}")]);
            }
            Err(_) => {
                assert_eq!(expected_flag, None);
                assert_eq!(interpreter, InterpreterConfig::default(), "a rejected value changed the configuration");
            }
        }
    }

    let expected_map = match lower.as_slice() {
        b"on" => Some(MapHeadToGet::On),
        b"off" => Some(MapHeadToGet::Off),
        b"auto" => Some(MapHeadToGet::Auto),
        _ => None,
    };
    match config::parse_map_head_to_get(value) {
        Ok(map) => assert_eq!(Some(map), expected_map, "{value:?}"),
        Err(message) => {
            assert_eq!(expected_map, None, "{value:?}: {message}");
            assert!(message.starts_with("WSGIMapHEADToGET: "), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
        }
    }

    let expected = expected_application_group(value);
    match config::parse_application_group(value) {
        Ok(group) => {
            assert_eq!(Some(&group), expected.as_ref(), "WSGIApplicationGroup {value:?}");
            // A group shows as it was written; the empty name is %{GLOBAL}'s.
            let shown = if value.is_empty() { config::GLOBAL_GROUP } else { value };
            assert_eq!(group.to_string(), shown);
        }
        Err(message) => {
            assert_eq!(expected, None, "WSGIApplicationGroup rejected {value:?}: {message}");
            assert!(message.starts_with("WSGIApplicationGroup: invalid application group '"), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }

    let expected_group = expected_process_group(value);
    match config::parse_process_group(value) {
        Ok(group) => {
            assert_eq!(Some(&group), expected_group.as_ref(), "WSGIProcessGroup {value:?}");
            assert_eq!(group.to_string(), value, "a group shows as it was written");
        }
        Err(message) => {
            assert_eq!(expected_group, None, "WSGIProcessGroup rejected {value:?}: {message}");
            assert!(message.starts_with("WSGIProcessGroup: invalid process group '"), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }

    match config::parse_callable_object(value) {
        Ok(name) => {
            assert_eq!(name, value);
            assert!(is_python_identifier(value), "{value:?} accepted but not a Python identifier");
        }
        Err(message) => {
            assert!(!is_python_identifier(value), "Python identifier {value:?} rejected: {message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
            assert!(message.contains("Python identifier"), "{message}");
        }
    }
});
