//! The embedded-mode request path: a request mapped to a WSGI script runs
//! `application(environ, start_response)` in this process's interpreter.

// Pure logic, unit-tested; everything else calls into Apache.
mod flusher;
mod rules;

#[cfg(not(test))]
mod environ;
#[cfg(not(test))]
mod errors;
#[cfg(not(test))]
mod file_wrapper;
#[cfg(not(test))]
mod flush_at_end;
#[cfg(not(test))]
mod handler;
#[cfg(not(test))]
mod input;
#[cfg(not(test))]
mod response;
#[cfg(not(test))]
mod script;
#[cfg(not(test))]
mod startup;
#[cfg(not(test))]
mod std_streams;

#[cfg(not(test))]
pub use flush_at_end::{on_brigade as flush_at_end, register as register_flush_at_end};
#[cfg(not(test))]
pub use handler::{handle, translate_name};
#[cfg(not(test))]
pub use startup::prepare_child;
#[cfg(not(test))]
pub(crate) use live::{type_name, ConnectionLock, RequestSlot, SameThread};

#[cfg(not(test))]
mod live {
use crate::httpd::ffi;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// Held while calling into Apache for a request's connection from more than
/// one thread can happen: by wsgi.input while it reads, and by the flusher
/// thread while it writes streamed output for the application (the rest of
/// the response side is serialised by its own state lock). A connection's
/// buckets and pools are not thread-safe; this keeps their uses apart.
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

/// A request_rec pointer that Python objects (wsgi.input, start_response,
/// wsgi.errors) may hold. Applications can keep those objects after the
/// request ends, so the handler clears the pointer before it returns and
/// every use goes through [`RequestSlot::get`].
pub(crate) struct RequestSlot(Mutex<*mut ffi::request_rec>);

// SAFETY: the pointer is only dereferenced while the handler that owns the
// request is running (it nulls the slot before returning), and Apache
// allows a request to be used from any thread as long as uses do not
// overlap; the mutex serialises access to the slot itself.
unsafe impl Send for RequestSlot {}
// SAFETY: as above.
unsafe impl Sync for RequestSlot {}

impl RequestSlot {
    pub fn new(r: *mut ffi::request_rec) -> Self {
        Self(Mutex::new(r))
    }

    /// The live request, or None once the request has finished.
    pub fn get(&self) -> Option<*mut ffi::request_rec> {
        let r = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!r.is_null()).then_some(r)
    }

    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = std::ptr::null_mut();
    }
}
}
