//! The embedded transport: requests Apache hands this module are run in
//! the Apache child itself, through the WSGI core (src/wsgi/), with the
//! request_rec and its brigades behind the core's transport traits.

mod auth;
mod body;
mod child;
mod flush_at_end;
mod handler;
mod request;
mod request_vars;
mod sink;
mod status_page;

pub use auth::{check_access, check_group, check_password, get_realm_hash, parse_group_require};
pub use body::ApacheBody;
pub use child::{log_to_main_server, prepare_child, server_facts};
pub use flush_at_end::{on_brigade as flush_at_end, register as register_flush_at_end};
pub use handler::{handle, translate_name};
pub use request::apache_level;
pub use sink::ApacheSink;
pub use status_page::handle as handle_status_page;
