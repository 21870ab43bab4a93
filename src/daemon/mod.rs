//! Daemon mode: WSGI applications in process groups of their own
//! (`WSGIDaemonProcess`), forked from the Apache parent through one
//! supervisor per group; the Apache children forward requests to them over
//! a UNIX socket per group. See DESIGN.md section 7.
//!
//! - `wire`: the frames both sides exchange (pure, unit-tested, fuzzed);
//! - `ledger`: the word per connection that says whether a request was
//!   taken;
//! - `groups`: starting the groups after each configuration read;
//! - `supervisor`, `process`, `serve`, `conn`, `channel`, `title`: the
//!   daemon side, from the supervisor down to the WSGI core's transport;
//! - `client`: the Apache-child side;
//! - `metrics`, `status`: the figures the groups share with the Apache
//!   children, and the status page rendered from them;
//! - `auth`: the access and authentication scripts run in a group, both
//!   sides.

pub mod wire;
mod ledger;

#[cfg(not(test))]
pub mod auth;
#[cfg(not(test))]
mod channel;
#[cfg(not(test))]
pub mod client;
#[cfg(not(test))]
mod conn;
#[cfg(not(test))]
mod groups;
// Its shared-memory side is used by the runtime alone, not the unit tests.
#[cfg_attr(test, allow(dead_code))]
pub mod metrics;
#[cfg_attr(test, allow(dead_code))]
pub mod status;
#[cfg(not(test))]
mod process;
#[cfg(not(test))]
mod serve;
#[cfg(not(test))]
mod supervisor;
#[cfg(not(test))]
mod watchdog;
#[cfg(not(test))]
mod title;

#[cfg(not(test))]
pub use groups::{start as start_groups, Endpoint, ENDPOINTS};

/// Whether a request for the virtual host named `server_hostname` may go
/// to the group `name`: it exists, and was defined in the main server or
/// in a host of that ServerName. Err says why not.
#[cfg(not(test))]
pub fn check_group(name: &str, server_hostname: &str) -> Result<(), String> {
    let endpoints = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(endpoint) = endpoints.iter().find(|e| e.name == name) else {
        return Err(format!("there is no daemon process group named '{name}'"));
    };
    match &endpoint.defined_in {
        Some(host) if !host.eq_ignore_ascii_case(server_hostname) => Err(format!(
            "the daemon process group '{name}' belongs to the virtual host {host} and cannot serve {server_hostname}"
        )),
        _ => Ok(()),
    }
}
