//! The embedded transport: requests Apache hands this module are run in
//! the Apache child itself, through the WSGI core (src/wsgi/), with the
//! request_rec and its brigades behind the core's transport traits.

mod body;
mod child;
mod handler;
mod request;
mod sink;

pub use child::prepare_child;
pub use handler::{handle, translate_name};
