//! Application groups (`WSGIApplicationGroup` and the `application-group=`
//! option) as plain Rust: the values, what one resolves to for a request,
//! and the whole-configuration check that no process is given two.
//!
//! mod_wsgi runs each application group in a sub-interpreter of its own.
//! This module has only the main interpreter of each process (pyo3 and
//! many C extensions do not support sub-interpreters), so a process can
//! host one application group, and its main interpreter is then exactly
//! the interpreter mod_wsgi would have given that group. Isolation between
//! groups comes from daemon process groups instead. No Apache calls here:
//! the glue supplies the request's facts and the configuration's sections.

use crate::daemon_config::{self, ProcessGroup};
use std::fmt;

/// An application group value, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationGroup {
    /// `%{GLOBAL}` (or an empty name): the main interpreter, which
    /// mod_wsgi names `''`.
    Global,
    /// A literal name.
    Named(String),
    /// `%{RESOURCE}`: one group per host, port and script
    /// (`host:port|/script/uri`).
    Resource,
    /// `%{SERVER}`: one group per virtual host (`host:port`).
    Server,
    /// `%{HOST}`: one group per `Host` header the clients send.
    Host,
    /// `%{ENV:VARIABLE}`: named by a request variable (SetEnv, SetEnvIf,
    /// mod_rewrite).
    Env(String),
}

impl ApplicationGroup {
    /// The group's name when it does not depend on the request.
    pub fn static_name(&self) -> Option<&str> {
        match self {
            ApplicationGroup::Global => Some(""),
            ApplicationGroup::Named(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for ApplicationGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplicationGroup::Global => f.write_str("%{GLOBAL}"),
            ApplicationGroup::Named(name) => f.write_str(name),
            ApplicationGroup::Resource => f.write_str("%{RESOURCE}"),
            ApplicationGroup::Server => f.write_str("%{SERVER}"),
            ApplicationGroup::Host => f.write_str("%{HOST}"),
            ApplicationGroup::Env(variable) => write!(f, "%{{ENV:{variable}}}"),
        }
    }
}

/// An application group value. The error is a sentence for the caller to
/// put after the directive's name. mod_wsgi takes any other `%...` value
/// as a literal name, so a misspelt `%{global}` silently becomes a group
/// of its own; here it is refused.
pub fn parse(value: &str) -> Result<ApplicationGroup, String> {
    let group = match value {
        "" | "%{GLOBAL}" => ApplicationGroup::Global,
        "%{RESOURCE}" => ApplicationGroup::Resource,
        "%{SERVER}" => ApplicationGroup::Server,
        "%{HOST}" => ApplicationGroup::Host,
        _ => match value.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}')) {
            Some(variable) if daemon_config::is_variable_name(variable) => ApplicationGroup::Env(variable.to_owned()),
            None if !value.starts_with('%') && !value.chars().any(char::is_control) => {
                ApplicationGroup::Named(value.to_owned())
            }
            _ => {
                return Err(format!(
                    "invalid application group '{}'; expected %{{GLOBAL}}, %{{RESOURCE}}, %{{SERVER}}, \
                     %{{HOST}}, %{{ENV:VARIABLE}} or a name not starting with '%'",
                    value.escape_default()
                ))
            }
        },
    };
    Ok(group)
}

/// What resolving a group needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The ServerName of the host serving the request.
    pub server_hostname: &'a str,
    /// The port as Apache reports it (ap_get_server_port: SERVER_PORT).
    pub port: u16,
    /// The host name the client asked for (the Host header), if any.
    pub host: Option<&'a str>,
    /// SCRIPT_NAME: the URI without PATH_INFO.
    pub script_name: &'a str,
}

/// The name of `group` for a request, as mod_wsgi names its interpreters.
/// `variable` looks a request variable up (Apache's notes, then the
/// request's environment, then the process's).
pub fn resolve(group: &ApplicationGroup, request: &RequestFacts<'_>, variable: &dyn Fn(&str) -> Option<String>) -> String {
    match group {
        ApplicationGroup::Global => String::new(),
        ApplicationGroup::Named(name) => name.clone(),
        ApplicationGroup::Resource => {
            format!("{}|{}", with_port(request.server_hostname, request.port), resource_script_name(request.script_name))
        }
        ApplicationGroup::Server => with_port(request.server_hostname, request.port),
        ApplicationGroup::Host => {
            // HTTP/1.0 clients may send no Host header.
            let host = request.host.filter(|h| !h.is_empty()).unwrap_or(request.server_hostname);
            with_port(host, request.port)
        }
        ApplicationGroup::Env(name) => match variable(name) {
            // Unset: mod_wsgi names the group by the value as written,
            // so the requests without the variable share one group.
            None => group.to_string(),
            // A variable may hold one of the special forms, but not send
            // the lookup on to another variable.
            Some(value) if value.starts_with('%') && !value.starts_with("%{ENV:") => match parse(&value) {
                Ok(inner) => resolve(&inner, request, variable),
                Err(_) => value,
            },
            Some(value) => value,
        },
    }
}

/// `host`, with `:port` unless the port is HTTP's or HTTPS's default.
fn with_port(host: &str, port: u16) -> String {
    if port == 80 || port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// The script part of a `%{RESOURCE}` name: SCRIPT_NAME with runs of
/// slashes made one and ASCII letters lowered, so that URLs reaching the
/// same script by another spelling share its group, as in mod_wsgi.
pub fn resource_script_name(script_name: &str) -> String {
    let mut name = String::with_capacity(script_name.len());
    for c in script_name.chars() {
        if !(c == '/' && name.ends_with('/')) {
            name.push(c.to_ascii_lowercase());
        }
    }
    name
}

/// Which process a configured application group applies in, as far as
/// the configuration tells without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a, D> {
    /// The line names its process group itself: `process-group=`, or a
    /// `WSGIImportScript` without it (loaded in the Apache children).
    Explicit(&'a ProcessGroup),
    /// An alias line without `process-group=`: the `WSGIProcessGroup` of
    /// whichever section the request is in decides.
    FromSections,
    /// A `WSGIApplicationGroup` directive in section `D`: that section's
    /// own `WSGIProcessGroup`, if it has one.
    Section(D),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteTo<D> {
    Explicit(ProcessGroup),
    FromSections,
    Section(D),
}

#[derive(Debug)]
struct GroupUse<D> {
    directive: String,
    group: ApplicationGroup,
    route: RouteTo<D>,
    /// For `%{RESOURCE}` on a `WSGIScriptAlias` to one script: its URL
    /// path, which gives the group a name of its own.
    resource_of: Option<String>,
    location: Option<String>,
}

/// The application groups a process is known to host without a request:
/// static names, or one group per script under `%{RESOURCE}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosted {
    Name(String),
    /// The index of the alias line's use.
    Resource(usize),
}

/// Every application group the configuration sets, gathered while it is
/// read, and whether any request is sent to a daemon process group. The
/// check runs once everything is read ([`ApplicationGroupRegistry::finish`]),
/// since a section's `WSGIProcessGroup` may come after its
/// `WSGIApplicationGroup`. `D` identifies a configuration section (a
/// per-directory config pointer in the glue).
#[derive(Debug)]
pub struct ApplicationGroupRegistry<D> {
    uses: Vec<GroupUse<D>>,
    /// A `WSGIProcessGroup` or `process-group=` other than `%{GLOBAL}` is
    /// somewhere; without one every request runs embedded.
    delegates: bool,
}

impl<D> Default for ApplicationGroupRegistry<D> {
    fn default() -> Self {
        ApplicationGroupRegistry { uses: Vec::new(), delegates: false }
    }
}

/// A process group's static application groups, for the processes to
/// report (`mod_wsgi.application_group`) from the moment they start.
pub type StaticGroups = Vec<(ProcessGroup, String)>;

impl<D: Copy + PartialEq> ApplicationGroupRegistry<D> {
    /// Notes that `directive` sets `group` for requests (or, for
    /// `WSGIImportScript`, a script) routed as `route`.
    pub fn record(
        &mut self,
        directive: &str,
        group: &ApplicationGroup,
        route: Route<'_, D>,
        resource_of: Option<&str>,
        location: Option<String>,
    ) {
        let route = match route {
            Route::Explicit(process_group) => RouteTo::Explicit(process_group.clone()),
            Route::FromSections => RouteTo::FromSections,
            Route::Section(section) => {
                // The last value given in a section is the one in force.
                self.uses.retain(|u| u.route != RouteTo::Section(section));
                RouteTo::Section(section)
            }
        };
        self.uses.push(GroupUse {
            directive: directive.to_owned(),
            group: group.clone(),
            route,
            resource_of: resource_of.map(str::to_owned),
            location,
        });
    }

    /// Notes a `WSGIProcessGroup` or `process-group=` that routes requests.
    pub fn note_delegation(&mut self, group: &ProcessGroup) {
        self.delegates |= !group.is_global();
    }

    /// Checks that no process hosts two application groups where the
    /// configuration alone shows it; returns each process group's one
    /// static application group. `section_process_group` gives the
    /// `WSGIProcessGroup` set in a section itself.
    pub fn finish(&self, section_process_group: impl Fn(D) -> Option<ProcessGroup>) -> Result<StaticGroups, Vec<String>> {
        let everything_embedded = (!self.delegates).then_some(ProcessGroup::Global);
        let mut hosts: Vec<(ProcessGroup, Vec<(Hosted, &GroupUse<D>)>)> = Vec::new();
        for (index, used) in self.uses.iter().enumerate() {
            let process_group = match &used.route {
                RouteTo::Explicit(group) => Some(group.clone()),
                RouteTo::Section(section) => section_process_group(*section).or_else(|| everything_embedded.clone()),
                RouteTo::FromSections => everything_embedded.clone(),
            };
            // A variable's group is only known per request.
            let Some(process_group) = process_group.filter(|g| !matches!(g, ProcessGroup::Env(_))) else { continue };
            let hosted = match (used.group.static_name(), &used.resource_of) {
                (Some(name), _) => Hosted::Name(name.to_owned()),
                (None, Some(_)) if used.group == ApplicationGroup::Resource => Hosted::Resource(index),
                _ => continue,
            };
            let at = match hosts.iter().position(|(g, _)| *g == process_group) {
                Some(at) => at,
                None => {
                    hosts.push((process_group, Vec::new()));
                    hosts.len() - 1
                }
            };
            if !hosts[at].1.iter().any(|(h, _)| *h == hosted) {
                hosts[at].1.push((hosted, used));
            }
        }
        let mut errors = Vec::new();
        let mut static_groups = Vec::new();
        for (process_group, hosted) in &hosts {
            match hosted.as_slice() {
                [(Hosted::Name(name), _)] => static_groups.push((process_group.clone(), name.clone())),
                [_] => {}
                [(_, first), (_, second), ..] => errors.push(conflict_message(process_group, first, second)),
                [] => unreachable!("a process group is listed with the use that named it"),
            }
        }
        if errors.is_empty() {
            Ok(static_groups)
        } else {
            Err(errors)
        }
    }
}

fn conflict_message<D>(process_group: &ProcessGroup, first: &GroupUse<D>, second: &GroupUse<D>) -> String {
    let describe = |used: &GroupUse<D>| {
        let value = match (&used.group, &used.resource_of) {
            (ApplicationGroup::Resource, Some(url)) => format!("%{{RESOURCE}} (the script at {url})"),
            (group, _) => format!("'{}'", group.to_string().escape_default()),
        };
        let at = used.location.as_ref().map(|l| format!(", {l}")).unwrap_or_default();
        format!("{value} ({}{at})", used.directive)
    };
    let process = match process_group {
        ProcessGroup::Global => "embedded mode, in every Apache child process".to_owned(),
        group => format!("daemon process group '{}'", group.to_string().escape_default()),
    };
    format!(
        "{}: application groups {} and {} would both run in {process}; mod_wsgi_rs runs the applications \
         of a process in its one Python interpreter, so a process can host only one application group: \
         give each application group a WSGIDaemonProcess of its own and send it there with \
         WSGIProcessGroup or process-group=, or, if they can share an interpreter, give them the same \
         application group (WSGIApplicationGroup or application-group=)",
        second.directive,
        describe(first),
        describe(second),
    )
}

/// The log line for a request whose application group is not the one its
/// process already hosts (the request gets 500).
pub fn mismatch_message(script: &str, requested: &str, hosted: &str) -> String {
    let shown = |name: &str| if name.is_empty() { "'' (%{GLOBAL})".to_owned() } else { format!("'{}'", name.escape_debug()) };
    format!(
        "WSGI script {script} is in application group {}, but this process already serves application group {}; \
         mod_wsgi_rs runs one application group per process (there are no sub-interpreters): give each \
         application group a WSGIDaemonProcess of its own and send its requests there with WSGIProcessGroup",
        shown(requested),
        shown(hosted)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_mod_wsgi_takes() {
        assert_eq!(parse("%{GLOBAL}"), Ok(ApplicationGroup::Global));
        assert_eq!(parse(""), Ok(ApplicationGroup::Global));
        assert_eq!(parse("%{RESOURCE}"), Ok(ApplicationGroup::Resource));
        assert_eq!(parse("%{SERVER}"), Ok(ApplicationGroup::Server));
        assert_eq!(parse("%{HOST}"), Ok(ApplicationGroup::Host));
        assert_eq!(parse("%{ENV:APP}"), Ok(ApplicationGroup::Env("APP".into())));
        for name in ["site", "my site", "example.com|/app", "a%b", "\u{e9}t\u{e9}"] {
            assert_eq!(parse(name), Ok(ApplicationGroup::Named(name.into())), "{name}");
        }
        for value in ["%{GLOBAL}", "%{RESOURCE}", "%{SERVER}", "%{HOST}", "%{ENV:APP}", "site"] {
            assert_eq!(parse(value).unwrap().to_string(), value);
        }
        assert_eq!(parse("").unwrap().static_name(), Some(""));
        assert_eq!(parse("site").unwrap().static_name(), Some("site"));
        assert_eq!(parse("%{SERVER}").unwrap().static_name(), None);
    }

    #[test]
    fn misspelt_special_values_are_refused() {
        for bad in ["%{global}", "%{ENV:}", "%{ENV:a b}", "%{ENV:A", "%{FOO}", "%x", "a\nb"] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid application group '{}'; expected %{{GLOBAL}}", bad.escape_default())), "{err}");
        }
    }

    fn request<'a>(port: u16, host: Option<&'a str>, script_name: &'a str) -> RequestFacts<'a> {
        RequestFacts { server_hostname: "www.example", port, host, script_name }
    }

    fn no_variables(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn resolving_as_mod_wsgi_names_its_interpreters() {
        let r = request(8080, Some("alias.example"), "/Shop//Cart");
        let resolve = |value: &str| resolve(&parse(value).unwrap(), &r, &no_variables);
        assert_eq!(resolve("%{GLOBAL}"), "");
        assert_eq!(resolve("site"), "site");
        assert_eq!(resolve("%{RESOURCE}"), "www.example:8080|/shop/cart");
        assert_eq!(resolve("%{SERVER}"), "www.example:8080");
        assert_eq!(resolve("%{HOST}"), "alias.example:8080");
        for port in [80, 443] {
            let r = request(port, Some(""), "");
            assert_eq!(super::resolve(&ApplicationGroup::Resource, &r, &no_variables), "www.example|");
            assert_eq!(super::resolve(&ApplicationGroup::Server, &r, &no_variables), "www.example");
            assert_eq!(super::resolve(&ApplicationGroup::Host, &r, &no_variables), "www.example");
        }
        assert_eq!(resource_script_name("//A/b///C.wsgi"), "/a/b/c.wsgi");
        assert_eq!(resource_script_name("/\u{c9}"), "/\u{c9}");
    }

    #[test]
    fn a_variable_names_the_group_or_holds_a_special_value() {
        let r = request(80, None, "/app");
        let variables = |name: &str| match name {
            "SITE" => Some("shop".to_owned()),
            "EMPTY" => Some(String::new()),
            "SPECIAL" => Some("%{SERVER}".to_owned()),
            "CHAINED" => Some("%{ENV:SITE}".to_owned()),
            "ODD" => Some("%{nope}".to_owned()),
            _ => None,
        };
        let resolve = |variable: &str| resolve(&ApplicationGroup::Env(variable.into()), &r, &variables);
        assert_eq!(resolve("SITE"), "shop");
        assert_eq!(resolve("EMPTY"), "");
        assert_eq!(resolve("SPECIAL"), "www.example");
        assert_eq!(resolve("CHAINED"), "%{ENV:SITE}");
        assert_eq!(resolve("ODD"), "%{nope}");
        assert_eq!(resolve("UNSET"), "%{ENV:UNSET}");
    }

    type Registry = ApplicationGroupRegistry<u32>;

    fn at(line: u32) -> Option<String> {
        Some(format!("line {line} of /etc/apache2/apache2.conf"))
    }

    fn group(value: &str) -> ApplicationGroup {
        parse(value).unwrap()
    }

    fn no_sections(_: u32) -> Option<ProcessGroup> {
        None
    }

    const GLOBAL: ProcessGroup = ProcessGroup::Global;

    fn named(name: &str) -> ProcessGroup {
        ProcessGroup::Named(name.into())
    }

    #[test]
    fn two_static_groups_in_the_apache_children_are_refused() {
        let mut r = Registry::default();
        r.record("WSGIScriptAlias", &group("a"), Route::FromSections, None, at(3));
        r.record("WSGIApplicationGroup", &group("b"), Route::Section(1), None, at(7));
        let errors = r.finish(no_sections).unwrap_err();
        assert_eq!(
            errors,
            ["WSGIApplicationGroup: application groups 'a' (WSGIScriptAlias, line 3 of /etc/apache2/apache2.conf) \
              and 'b' (WSGIApplicationGroup, line 7 of /etc/apache2/apache2.conf) would both run in embedded mode, \
              in every Apache child process; mod_wsgi_rs runs the applications of a process in its one Python \
              interpreter, so a process can host only one application group: give each application group a \
              WSGIDaemonProcess of its own and send it there with WSGIProcessGroup or process-group=, or, if \
              they can share an interpreter, give them the same application group (WSGIApplicationGroup or \
              application-group=)"]
        );
    }

    #[test]
    fn one_group_per_daemon_group_is_fine_and_reported() {
        let (shop, blog) = (named("shop"), named("blog"));
        let mut r = Registry::default();
        r.note_delegation(&shop);
        r.record("WSGIScriptAlias", &group("shop"), Route::Explicit(&shop), None, at(1));
        r.record("WSGIImportScript", &group("shop"), Route::Explicit(&shop), None, at(2));
        r.record("WSGIApplicationGroup", &group("%{GLOBAL}"), Route::Section(5), None, at(4));
        r.record("WSGIImportScript", &group("%{GLOBAL}"), Route::Explicit(&GLOBAL), None, at(6));
        // Only known per request: not part of the check.
        r.record("WSGIScriptAlias", &group("%{SERVER}"), Route::Explicit(&shop), None, at(8));
        r.record("WSGIApplicationGroup", &group("other"), Route::Section(9), None, at(9));
        r.record("WSGIScriptAlias", &group("other"), Route::FromSections, None, at(10));
        r.record("WSGIScriptAlias", &group("x"), Route::Explicit(&ProcessGroup::Env("G".into())), None, at(11));
        let sections = |section: u32| [5, 6].contains(&section).then(|| blog.clone());
        assert_eq!(r.finish(sections), Ok(vec![(shop.clone(), "shop".to_owned()), (blog.clone(), String::new()), (GLOBAL, String::new())]));
        // Another section routed to the same group.
        r.record("WSGIApplicationGroup", &group("blog2"), Route::Section(6), None, at(12));
        let errors = r.finish(sections).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("WSGIApplicationGroup: application groups '%{GLOBAL}' (WSGIApplicationGroup, line 4"), "{}", errors[0]);
        assert!(errors[0].contains("'blog2' (WSGIApplicationGroup, line 12 of /etc/apache2/apache2.conf) would both run in daemon process group 'blog'"), "{}", errors[0]);
    }

    #[test]
    fn the_last_value_of_a_section_counts() {
        let mut r = Registry::default();
        r.record("WSGIApplicationGroup", &group("a"), Route::Section(1), None, at(1));
        r.record("WSGIApplicationGroup", &group("b"), Route::Section(1), None, at(2));
        assert_eq!(r.finish(no_sections), Ok(vec![(GLOBAL, "b".to_owned())]));
    }

    #[test]
    fn resource_gives_each_script_its_own_group() {
        let site = named("site");
        let mut r = Registry::default();
        r.note_delegation(&site);
        r.record("WSGIScriptAlias", &group("%{RESOURCE}"), Route::Explicit(&site), Some("/a"), at(1));
        assert_eq!(r.finish(no_sections), Ok(vec![]));
        // A pattern alias: one group per script it maps to, only known per request.
        r.record("WSGIScriptAliasMatch", &group("%{RESOURCE}"), Route::Explicit(&site), None, at(2));
        assert!(r.finish(no_sections).is_ok());
        r.record("WSGIScriptAlias", &group("%{RESOURCE}"), Route::Explicit(&site), Some("/b"), at(3));
        let errors = r.finish(no_sections).unwrap_err();
        assert!(
            errors[0].contains("application groups %{RESOURCE} (the script at /a) (WSGIScriptAlias, line 1 of \
                                /etc/apache2/apache2.conf) and %{RESOURCE} (the script at /b)"),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("daemon process group 'site'"), "{}", errors[0]);
    }

    #[test]
    fn mismatch_names_script_and_both_groups() {
        let message = mismatch_message("/srv/b.wsgi", "b", "");
        assert!(message.starts_with("WSGI script /srv/b.wsgi is in application group 'b', but this process already serves application group '' (%{GLOBAL})"), "{message}");
        assert!(message.contains("WSGIDaemonProcess"), "{message}");
        assert!(mismatch_message("/s", "a\nb", "c").contains("'a\\nb'"));
    }
}
