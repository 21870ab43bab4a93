//! What an application-group value means, written independently of the
//! parser, for the targets that feed one in: `%{GLOBAL}` or an empty name
//! (the main interpreter), `%{RESOURCE}`, `%{SERVER}`, `%{HOST}`,
//! `%{ENV:VARIABLE}`, or a name that does not start with '%' and holds no
//! control character. Included with `#[path]`; not a target itself.

use crate::application_group::ApplicationGroup;

pub fn expected_application_group(value: &str) -> Option<ApplicationGroup> {
    match value {
        "" | "%{GLOBAL}" => return Some(ApplicationGroup::Global),
        "%{RESOURCE}" => return Some(ApplicationGroup::Resource),
        "%{SERVER}" => return Some(ApplicationGroup::Server),
        "%{HOST}" => return Some(ApplicationGroup::Host),
        _ => {}
    }
    if let Some(variable) = value.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}')) {
        let plain = !variable.is_empty() && !variable.chars().any(|c| c.is_whitespace() || c.is_control());
        return (plain && !variable.contains(['{', '}'])).then(|| ApplicationGroup::Env(variable.to_owned()));
    }
    (!value.starts_with('%') && !value.chars().any(char::is_control)).then(|| ApplicationGroup::Named(value.to_owned()))
}
