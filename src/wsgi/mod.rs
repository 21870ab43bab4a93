//! The WSGI core: running `application(environ, start_response)` for a
//! request, whatever carries it. It knows Python, not Apache: the request
//! body, the response and facts about the server reach it through the
//! traits in [`transport`], implemented for requests run inside an Apache
//! child by src/embedded/.

// Pure logic, unit-tested; everything else needs a Python interpreter.
mod flusher;
mod rules;

#[cfg(not(test))]
pub mod app;
#[cfg(not(test))]
mod app_group;
#[cfg(not(test))]
pub mod auth;
#[cfg(not(test))]
mod environ;
#[cfg(not(test))]
mod events;
#[cfg(not(test))]
pub mod file_wrapper;
#[cfg(not(test))]
mod input;
#[cfg(not(test))]
mod log_stream;
#[cfg(not(test))]
pub mod logging;
#[cfg(not(test))]
mod response;
#[cfg(not(test))]
pub mod script;
#[cfg(not(test))]
mod server_modules;
#[cfg(not(test))]
pub mod startup;
#[cfg(not(test))]
mod std_streams;
#[cfg(not(test))]
pub mod transport;

#[cfg(not(test))]
pub(crate) use live::{type_name, ConnectionLock, SameThread};

#[cfg(not(test))]
mod live {
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// Held while using a request's connection from more than one thread can
/// happen: by wsgi.input while it reads, and by the flusher thread while
/// it writes streamed output for the application (the rest of the
/// response side is serialised by its own state lock). A transport's
/// connection need not be thread-safe; this keeps its uses apart.
pub(crate) type ConnectionLock = Arc<Mutex<()>>;

/// A pointer carried into a `py.detach` closure. detach runs the closure
/// on the calling thread, merely without the GIL, but its signature asks
/// for `Send`, which raw pointers are not.
#[derive(Clone, Copy)]
pub struct SameThread<T>(pub *mut T);

// SAFETY: only used for closures passed to Python::detach, which executes
// them synchronously on the thread that created the value.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// Taking `self` whole makes closures capture the wrapper, not the bare
    /// pointer field.
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// The name of `obj`'s type, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_owned())
}
}
