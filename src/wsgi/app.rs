//! Running one request through a WSGI application, whatever carries it:
//! load the script, build the environ, call the application, send what it
//! returns through the transport's sink, and always close() it.

use super::app_group;
use super::environ::{self, EnvironSettings};
use super::events::RequestScope;
use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::logging::{log_exception, CurrentRequest, Level, RequestLog};
use super::response::{FinalPass, StartResponse};
use super::std_streams::RequestErrors;
use super::transport::{BodySource, ResponseSink};
use super::{script, type_name, ConnectionLock};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::sync::Arc;

/// A request as the transport hands it to the core.
pub struct Request<'a> {
    /// The WSGI script file.
    pub script: &'a str,
    /// The script file's mtime, when WSGIScriptReloading is on.
    pub reload_mtime: Option<i64>,
    pub callable_object: &'a str,
    /// The application group the configuration puts the request in,
    /// resolved for it; None when none is configured.
    pub application_group: Option<&'a str>,
    /// The CGI variables, in order (see environ::build).
    pub variables: &'a [(&'a [u8], &'a [u8])],
    /// When the transport received the request, in seconds since the epoch.
    pub request_start: f64,
    pub log: Arc<dyn RequestLog>,
    pub body: Box<dyn BodySource>,
    pub sink: Box<dyn ResponseSink>,
}

/// How a request ended, for the transport to finish it.
pub enum Outcome {
    /// The response went to the sink (complete, or cut short); what is left
    /// of it is to be sent without the GIL.
    Responded(Option<FinalPass>),
    /// Nothing was sent: the transport answers with this HTTP status.
    Failed(u16),
    /// The body could not be read: the transport ends the request with the
    /// status its body source gave.
    BodyFailed(i32),
}

const NOT_FOUND: u16 = 404;
const INTERNAL_SERVER_ERROR: u16 = 500;

pub fn run(py: Python<'_>, request: Request<'_>) -> Outcome {
    let log = &*request.log;
    // SAFETY: `request.log` outlives the guard, which is dropped at the end
    // of this function on this thread.
    let _current = unsafe { CurrentRequest::enter(log) };
    let script = request.script;
    // Before the script is loaded: it would be loaded into the
    // interpreter of another group.
    let application_group = match app_group::enter(py, request.application_group) {
        Ok(name) => name,
        Err(hosted) => {
            let requested = request.application_group.unwrap_or_default();
            log.write(Level::Err, &crate::application_group::mismatch_message(script, requested, &hosted));
            return Outcome::Failed(INTERNAL_SERVER_ERROR);
        }
    };
    let module = match script::load(py, script, request.reload_mtime) {
        Ok(module) => module,
        Err(err) => {
            log_exception(py, log, &format!("failed to load WSGI script {script}"), &err);
            return Outcome::Failed(INTERNAL_SERVER_ERROR);
        }
    };
    let callable = request.callable_object;
    let application = match module.getattr(callable) {
        Ok(app) => app,
        Err(err) if err.is_instance_of::<PyAttributeError>(py) => {
            log.write(Level::Err, &format!("target WSGI script {script} does not contain WSGI application '{callable}'"));
            return Outcome::Failed(NOT_FOUND);
        }
        Err(err) => {
            log_exception(py, log, &format!("failed to look up '{callable}' in WSGI script {script}"), &err);
            return Outcome::Failed(INTERNAL_SERVER_ERROR);
        }
    };
    let connection = ConnectionLock::default();
    let objects = (|| -> PyResult<_> {
        let start_response = Bound::new(py, StartResponse::new(request.sink, connection.clone()))?;
        let input = Input::new(request.body, connection, start_response.get().deferred_output());
        Ok((Bound::new(py, input)?, RequestErrors::enter(py, request.log.clone())?, start_response))
    })();
    let (input, errors, start_response) = match objects {
        Ok(objects) => objects,
        Err(err) => {
            log_exception(py, log, &format!("cannot prepare the request for {script}"), &err);
            return Outcome::Failed(INTERNAL_SERVER_ERROR);
        }
    };
    let settings = EnvironSettings {
        callable_object: callable,
        script_reloading: request.reload_mtime.is_some(),
        application_group: &application_group,
    };
    let environ = environ::build(py, request.variables, &settings, input.clone().into_any(), errors.stream());
    let scope = environ.and_then(|environ| {
        RequestScope::begin(py, &environ, application, callable, request.request_start).map(|begun| (environ, begun))
    });
    let outcome = match scope {
        Ok((environ, (scope, application))) => {
            let call = Call { py, log, script, input: input.get(), sender: start_response.get(), scope: &scope };
            let outcome = call.respond(&application, environ.into_any(), &start_response);
            scope.finish(py, start_response.get().status_code(py));
            outcome
        }
        Err(err) => {
            log_exception(py, log, &format!("cannot build the environ for {script}"), &err);
            Outcome::Failed(INTERNAL_SERVER_ERROR)
        }
    };
    // The application may keep these objects; from now on they refuse
    // to touch the finished request.
    input.get().finish();
    errors.finish();
    start_response.get().discard(py);
    outcome
}

/// One call of the application and everything it returns.
struct Call<'a, 'py> {
    py: Python<'py>,
    log: &'a dyn RequestLog,
    script: &'a str,
    input: &'a Input,
    sender: &'a StartResponse,
    scope: &'a RequestScope<'py>,
}

impl Call<'_, '_> {
    fn respond(
        &self,
        application: &Bound<'_, PyAny>,
        environ: Bound<'_, PyAny>,
        start_response: &Bound<'_, StartResponse>,
    ) -> Outcome {
        let py = self.py;
        let headline = || format!("exception raised by WSGI script {}", self.script);
        let result = application.call1((environ, start_response));
        // A failed body read has already decided the response: the transport
        // sent its own error (413, 400) or the client is gone. Whatever the
        // application made of the OSError is not sent.
        if let Some(failure) = self.input.failure() {
            self.log.write(
                Level::Err,
                &format!(
                    "cannot read the request body for WSGI script {}: {}; \
                     the application's response is not sent",
                    self.script, failure.reason
                ),
            );
            if let Ok(result) = &result {
                self.close(result);
            }
            return match self.give_up(INTERNAL_SERVER_ERROR) {
                Outcome::Failed(_) => Outcome::BodyFailed(failure.status),
                cut => cut,
            };
        }
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                self.scope.exception(py, &err);
                log_exception(py, self.log, &headline(), &err);
                return self.give_up(INTERNAL_SERVER_ERROR);
            }
        };
        let sent = self.send_body(&result);
        if let Err(err) = &sent {
            self.scope.exception(py, err);
        }
        // PEP 3333: close() is called whatever happened while iterating.
        self.close(&result);
        // A file_wrapper with a shorter Content-Length is the documented way
        // to send the start of a file; for other bodies the excess is lost.
        let partial_file_ok = result.is_instance_of::<FileWrapper>();
        match sent {
            Ok(()) => self.finish(!partial_file_ok),
            Err(err) => {
                log_exception(py, self.log, &headline(), &err);
                self.give_up(INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn close(&self, result: &Bound<'_, PyAny>) {
        // Lists and tuples have no close(); asking would build and discard
        // an AttributeError on every request.
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            return;
        }
        let closed = match result.getattr_opt("close") {
            Ok(Some(close)) => close.call0().map(drop),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = closed {
            let headline = format!("close() of the response from WSGI script {} raised", self.script);
            log_exception(self.py, self.log, &headline, &err);
        }
    }

    /// Ends a failed request: with nothing on the wire yet, the transport
    /// sends its error response for `status`; once the response has
    /// started, the client must see it cut short instead.
    fn give_up(&self, status: u16) -> Outcome {
        if self.sender.committed(self.py) {
            self.sender.abort(self.py);
            Outcome::Responded(None)
        } else {
            self.sender.discard(self.py);
            Outcome::Failed(status)
        }
    }

    /// Completes a body the application returned without error; the last
    /// of it is left for the transport to send without the GIL.
    fn finish(&self, warn_excess: bool) -> Outcome {
        let py = self.py;
        if let Some((sent, declared)) = self.sender.shortfall(py) {
            self.log.write(
                Level::Err,
                &format!(
                    "WSGI script {} returned fewer bytes ({sent}) than its Content-Length ({declared}); \
                     closing the connection",
                    self.script
                ),
            );
            self.sender.abort(py);
            return Outcome::Responded(None);
        }
        // The response itself is fine (cut to the declared length), but data
        // the application meant to send was lost: worth a warning.
        if let Some((declared, dropped)) = warn_excess.then(|| self.sender.excess(py)).flatten() {
            self.log.write(
                Level::Warning,
                &format!(
                    "WSGI script {} returned more bytes than its Content-Length ({declared}); \
                     {dropped} bytes were not sent",
                    self.script
                ),
            );
        }
        match self.sender.finish(py) {
            Ok(final_pass) => Outcome::Responded(Some(final_pass)),
            Err(err) => {
                let headline = format!("cannot complete the response of WSGI script {}", self.script);
                log_exception(py, self.log, &headline, &err);
                self.give_up(INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Iterates the response body. A list or tuple is a body known in
    /// full, so it is buffered and sent in one pass; any other iterable is
    /// streamed item by item as PEP 3333 requires. A `wsgi.file_wrapper`
    /// around a regular file is handed to the transport as the file itself.
    fn send_body(&self, result: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = self.py;
        if let Ok(wrapper) = result.cast::<FileWrapper>() {
            if let Some(region) = wrapper.get().file_region(py) {
                return self.sender.send_file(py, region);
            }
        }
        let streamed = !(result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>());
        for item in result.try_iter()? {
            let item = item?;
            let bytes = item.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(format!("response body items must be bytes, not {}", type_name(&item)))
            })?;
            // Headers wait for the first non-empty item (PEP 3333).
            if !bytes.as_bytes().is_empty() {
                self.sender.send(py, bytes, streamed)?;
            }
        }
        Ok(())
    }
}
