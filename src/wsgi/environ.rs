//! Building the WSGI environ: the CGI variables the transport supplies for
//! the request, then the `wsgi.*` keys and this server's own.

use super::file_wrapper::FileWrapper;
use super::transport::server_facts;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyDict, PyString};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the configuration contributes to the environ of one request.
pub struct EnvironSettings<'a> {
    pub callable_object: &'a str,
    pub script_reloading: bool,
    /// The application group the request runs in ('' for %{GLOBAL}).
    pub application_group: &'a str,
}

/// Variables a transport may pass that an application must not see.
const HIDDEN: &[&[u8]] = &[b"PATH"];

/// PEP 3333 native strings: bytes from the wire are decoded as Latin-1,
/// which maps every byte to one code point and never fails.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: PyUnicode_DecodeLatin1 reads exactly `len` bytes and cannot
    // fail except on memory exhaustion, which pyo3 turns into a panic here
    // as it does for every other allocation.
    unsafe {
        Bound::from_owned_ptr(
            py,
            pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), bytes.len() as _, std::ptr::null()),
        )
        .cast_into_unchecked()
    }
}

/// The environ for a request whose CGI variables are `variables`, in
/// order (a later one replaces an earlier one of the same name).
pub fn build<'py>(
    py: Python<'py>,
    variables: &[(&[u8], &[u8])],
    settings: &EnvironSettings<'_>,
    input: Bound<'py, PyAny>,
    errors: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let shown = || variables.iter().filter(|(key, _)| !HIDDEN.contains(key));
    // Decoding can run a finalizer that lets another thread take the GIL
    // and come here: it then waits for the lock without the GIL.
    let mut strings = STRINGS.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
    let environ = strings.environ(py, shown)?;
    drop(strings);
    // The last HTTPS wins, as in the environ.
    let https = shown().rev().find(|(key, _)| *key == b"HTTPS").is_some_and(|(_, value)| value.eq_ignore_ascii_case(b"on"));
    // Interned: made and hashed once, not at every request.
    let scheme = if https { intern!(py, "https") } else { intern!(py, "http") };
    set(&environ, intern!(py, "wsgi.url_scheme"), scheme)?;
    set(&environ, intern!(py, "wsgi.input"), &input)?;
    set(&environ, intern!(py, "wsgi.errors"), &errors)?;
    // The default name is interned, as the keys are; another is made here.
    let callable = match settings.callable_object {
        "application" => intern!(py, "application").clone(),
        other => PyString::new(py, other),
    };
    set(&environ, intern!(py, "mod_wsgi.callable_object"), &callable)?;
    let reloading = if settings.script_reloading { intern!(py, "1") } else { intern!(py, "0") };
    set(&environ, intern!(py, "mod_wsgi.script_reloading"), reloading)?;
    // The template's '' is right for %{GLOBAL} and for no group at all.
    if !settings.application_group.is_empty() {
        environ.set_item(intern!(py, "mod_wsgi.application_group"), settings.application_group)?;
    }
    Ok(environ)
}

/// How many keys an environ has room for before it must grow: the
/// template's, some 40 CGI variables (a request with many headers has
/// more) and the keys build() sets after them.
const ROOM: usize = 80;

/// An empty dict with room for `entries` keys.
fn presized(py: Python<'_>, entries: usize) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: _PyDict_NewPresized (exported by CPython 3.9 to 3.13) returns
    // a new reference to an empty dict, or null with an exception set.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(py, pyo3::ffi::_PyDict_NewPresized(entries as _))?.cast_into_unchecked())
    }
}

/// environ[key] = value, without the conversions of the generic set_item.
fn set(environ: &Bound<'_, PyDict>, key: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: three live objects, the first a dict; PyDict_SetItem takes
    // its own references to key and value.
    if unsafe { pyo3::ffi::PyDict_SetItem(environ.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
        return Err(PyErr::fetch(environ.py()));
    }
    Ok(())
}

/// The keys every environ has with the same value, built once per process;
/// each request starts with them.
fn template(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    TEMPLATE
        .get_or_try_init(py, || {
            let facts = server_facts();
            // Growing a dict rehashes it: sized once here, for every copy.
            let t = presized(py, ROOM)?;
            t.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
            t.set_item("wsgi.version", (1, 0))?;
            t.set_item("wsgi.input_terminated", true)?;
            t.set_item("wsgi.multithread", facts.multithread)?;
            t.set_item("wsgi.multiprocess", facts.multiprocess)?;
            t.set_item("wsgi.run_once", false)?;
            t.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
            t.set_item("mod_wsgi.process_group", &facts.process_group)?;
            t.set_item("mod_wsgi.application_group", "")?;
            t.set_item("apache.version", facts.apache_version)?;
            t.set_item("mod_wsgi_rs.version", env!("CARGO_PKG_VERSION"))?;
            Ok(t.unbind())
        })
        .map(|t| t.bind(py))
}

/// The str objects of the CGI variables, reused across requests: most
/// variables come in the same order with the same value in request after
/// request (the server's, the client's address, most headers), and a str
/// is immutable, so one object can serve every environ that has that value.
static STRINGS: Mutex<Strings> = Mutex::new(Strings { keys: BTreeMap::new(), recent: Vec::new(), base: None });

struct Strings {
    /// Every key seen, up to MAX_KEYS: the same few dozen names come with
    /// every request, and clients choose header names.
    keys: BTreeMap<Vec<u8>, Py<PyString>>,
    /// The variables of the last request that had one at each position.
    recent: Vec<Recent>,
    /// The template with the variables of `recent` set, for the first
    /// `.1` positions: a request with those names in that order starts
    /// from a copy of it and sets only the values that changed. Copying
    /// a dict clones its table in one go; setting some 40 keys one by one
    /// costs several times that.
    base: Option<(Py<PyDict>, usize)>,
}

struct Recent {
    key: Vec<u8>,
    key_string: Py<PyString>,
    /// The last value kept at this position (None: none yet, or only
    /// values too long to keep).
    value: Vec<u8>,
    value_string: Option<Py<PyString>>,
    /// A later position of the base has the same name (and so the value
    /// the environ gets): what comes at this one is not set.
    shadowed: bool,
}

const MAX_KEYS: usize = 512;
/// Positions and value lengths kept in `recent`; beyond them (a long
/// cookie, a request with very many headers) values are decoded afresh.
const MAX_RECENT: usize = 128;
const MAX_RECENT_VALUE: usize = 256;

impl Strings {
    /// The template with `variables` set, in order (a later one replaces
    /// an earlier one of the same name).
    fn environ<'a, 'py, I>(&mut self, py: Python<'py>, variables: impl Fn() -> I) -> PyResult<Bound<'py, PyDict>>
    where
        I: Iterator<Item = &'a (&'a [u8], &'a [u8])>,
    {
        if let Some((base, count)) = &self.base {
            // One pass: while the names are those of the base, position by
            // position, the changed values go into it. At the first name
            // that differs (or a different count) the base is dropped and
            // the environ is built in full, which makes a new one.
            let base = base.bind(py).clone();
            let count = *count;
            let same_names = 'names: {
                let mut position = 0;
                for (key, value) in variables() {
                    if position == count || self.recent[position].key != *key {
                        break 'names false;
                    }
                    let recent = &self.recent[position];
                    let kept = recent.value_string.is_some() && recent.value == *value;
                    if !recent.shadowed && !kept {
                        let (key, value) = self.pair(py, position, key, value);
                        set(&base, &key, &value)?;
                    }
                    position += 1;
                }
                position == count
            };
            if same_names {
                return base.copy();
            }
        }
        // A copy of the template keeps its table (a copy of a dict without
        // deletions clones it), which has room for a request's keys; one
        // that has more makes the dict grow, which only costs time.
        let environ = template(py)?.copy()?;
        let mut count = 0;
        for (position, (key, value)) in variables().enumerate() {
            let (key, value) = self.pair(py, position, key, value);
            set(&environ, &key, &value)?;
            count += 1;
        }
        // A base needs every position kept (see pair).
        self.base = None;
        if count <= self.recent.len() {
            for position in 0..count {
                let key = &self.recent[position].key;
                let shadowed = self.recent[position + 1..count].iter().any(|later| later.key == *key);
                self.recent[position].shadowed = shadowed;
            }
            self.base = Some((environ.copy()?.unbind(), count));
        }
        Ok(environ)
    }

    /// The strs for the variable at `position` of this request.
    fn pair<'py>(&mut self, py: Python<'py>, position: usize, key: &[u8], value: &[u8]) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        if self.recent.get(position).is_none_or(|recent| recent.key != key) {
            let key_string = self.key_string(py, key);
            // Positions fill in order: a request has every one before its last.
            if position >= MAX_RECENT || position > self.recent.len() {
                return (key_string, latin1(py, value));
            }
            let recent = Recent { key: key.to_vec(), key_string: key_string.unbind(), value: Vec::new(), value_string: None, shadowed: false };
            if position == self.recent.len() {
                self.recent.push(recent);
            } else {
                self.recent[position] = recent;
            }
        }
        let recent = &mut self.recent[position];
        let key_string = recent.key_string.bind(py).clone();
        match &recent.value_string {
            Some(kept) if recent.value == value => (key_string, kept.bind(py).clone()),
            _ => {
                let fresh = latin1(py, value);
                if value.len() <= MAX_RECENT_VALUE {
                    recent.value.clear();
                    recent.value.extend_from_slice(value);
                    recent.value_string = Some(fresh.clone().unbind());
                } else {
                    // The base now holds this value, not the kept one: the
                    // next request must set its value whatever it is.
                    recent.value_string = None;
                }
                (key_string, fresh)
            }
        }
    }

    fn key_string<'py>(&mut self, py: Python<'py>, key: &[u8]) -> Bound<'py, PyString> {
        if let Some(cached) = self.keys.get(key) {
            return cached.bind(py).clone();
        }
        let made = latin1(py, key);
        if self.keys.len() < MAX_KEYS {
            self.keys.insert(key.to_vec(), made.clone().unbind());
        }
        made
    }
}
