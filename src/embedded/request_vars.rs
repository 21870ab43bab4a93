//! The CGI variables Apache's `ap_add_common_vars` and `ap_add_cgi_vars`
//! give a request, made from the request itself.
//!
//! Those two functions write every variable into `r->subprocess_env`,
//! from where the environ would then be read back: a name built in the
//! pool for every header, a search of the table for each of the CGI
//! variables, and a `strlen` of every name and value on the way out. Here
//! the same names and values go straight into the list the environ is
//! built from, following those functions' rules (Apache 2.4's
//! server/util_script.c) one by one: which headers become variables and
//! under what names, `CGIPassAuth`, the redirect variables, and how a
//! variable another module already set is replaced. With
//! `WSGIExportCGIVariables On` (the default) each variable is also put
//! into the table as they would put it there, so that log formats and
//! later modules see what they see with mod_wsgi. The conformance suite
//! checks the environ against mod_wsgi's, and tests/environ_unexported.rs
//! the table against mod_wsgi's.

use super::request::{apache_script_name, c_bytes, c_str};
use crate::httpd::{consts, ffi};
use std::ffi::{c_char, CStr};

type Var<'a> = (&'a [u8], &'a [u8]);

/// Appends the request's CGI variables to `vars`, which holds what
/// `r->subprocess_env` had when the handler started (SetEnv, SetEnvIf,
/// mod_rewrite, mod_ssl, the REDIRECT_ copies of an internal redirect).
///
/// What Apache does to a variable already in that table is kept: the
/// table matches names without regard to case, so a variable set before
/// under a name differing only in case takes the new value and keeps its
/// spelling, where the environ would otherwise get both names. SCRIPT_NAME,
/// PATH_INFO, REQUEST_METHOD, SERVER_PROTOCOL, QUERY_STRING and
/// REQUEST_URI are not appended: the caller sets them after, with the
/// values that win in the environ. With `export`, the table gets every
/// variable too, those six and PATH included, with Apache's values.
///
/// # Safety
/// `r` must be the live request being handled, in the handler; the slices
/// added point into its pool and must not outlive the handler call.
pub unsafe fn append<'a>(r: *mut ffi::request_rec, vars: &mut Vec<Var<'a>>, path_translated: bool, export: bool) {
    // `vars` holds the table's variables: none means it was empty.
    // SAFETY: r is live; its subprocess_env is a table.
    let table = export.then(|| Table { table: unsafe { (*r).subprocess_env }, was_empty: vars.is_empty() });
    let mut list = List { existing: vars.len(), vars, table };
    // SAFETY: guaranteed by the caller.
    unsafe {
        common_vars(r, &mut list);
        cgi_vars(r, &mut list, path_translated);
    }
}

/// How many variables [`append`] adds at most: one per header, and 22.
///
/// # Safety
/// `r` must be the live request.
pub unsafe fn most_appended(r: *mut ffi::request_rec) -> usize {
    // SAFETY: r is live; its headers_in is a table.
    22 + unsafe { (*ffi::apr_table_elts((*r).headers_in)).nelts } as usize
}

/// The core's per-directory configuration of the request (CGIPassAuth,
/// QualifyRedirectURL, CGIVar).
///
/// # Safety
/// `r` must be the live request.
unsafe fn core_dir_config<'a>(r: *mut ffi::request_rec) -> Option<&'a ffi::core_dir_config> {
    // SAFETY: r is live; the core module's slot is the first of every
    // per-directory vector (http_core.h's ap_get_core_module_config), and
    // the config lives as long as the request's configuration.
    unsafe { (*((*r).per_dir_config as *const *const ffi::core_dir_config)).as_ref() }
}

/// The variables being built, how many of them were in the request's
/// table before, and the table when they go into it as well.
struct List<'v, 'a> {
    vars: &'v mut Vec<Var<'a>>,
    existing: usize,
    table: Option<Table>,
}

impl<'a> List<'_, 'a> {
    /// As `ap_add_common_vars` leaves a variable: a name the table had
    /// (in any case) keeps its place and spelling and takes the value.
    fn add(&mut self, name: &'a CStr, value: &'a CStr) {
        if !replace(&mut self.vars[..self.existing], name.to_bytes(), value.to_bytes()) {
            self.vars.push((name.to_bytes(), value.to_bytes()));
        }
        self.export(name, value);
    }

    /// As `apr_table_setn` into the table (`ap_add_cgi_vars`): the value
    /// replaces any variable of that name, in any case.
    fn set(&mut self, name: &'a CStr, value: &'a CStr) {
        if !replace(self.vars, name.to_bytes(), value.to_bytes()) {
            self.vars.push((name.to_bytes(), value.to_bytes()));
        }
        self.export(name, value);
    }

    /// For the variables the caller appends itself: only a name the
    /// table already had in another case matters (the caller's exact
    /// name is added after it). `value` runs only then, or when the
    /// table takes it.
    fn set_other_spellings(&mut self, name: &'a CStr, value: impl FnOnce() -> &'a CStr) {
        let bytes = name.to_bytes();
        let other_spelling = |var: &Var<'_>| var.0 != bytes && var.0.eq_ignore_ascii_case(bytes);
        let existing = &mut self.vars[..self.existing];
        if self.table.is_some() || existing.iter().any(other_spelling) {
            let value = value();
            existing.iter_mut().filter(|var| other_spelling(var)).for_each(|var| var.1 = value.to_bytes());
            self.export(name, value);
        }
    }

    fn export(&mut self, name: &CStr, value: &CStr) {
        if let Some(table) = &self.table {
            // SAFETY: see Table::set.
            unsafe { table.set(name, value) };
        }
    }
}

/// `r->subprocess_env`, written as the two functions write it.
struct Table {
    table: *mut ffi::apr_table_t,
    was_empty: bool,
}

impl Table {
    /// Puts a variable in. Over a table that had variables before, each
    /// is set, replacing one of the same name in any case: what
    /// `ap_add_common_vars` does by making its variables apart and laying
    /// them over the table, and `ap_add_cgi_vars` by setting each. Into a
    /// table that was empty `ap_add_common_vars` adds directly (a header a
    /// module added twice gives two variables), and none of the names
    /// `ap_add_cgi_vars` then sets is one of those: adding is setting
    /// there, and takes no search of the table.
    ///
    /// # Safety
    /// The table must be live; name and value must be static or in the
    /// request pool, as the table keeps the pointers (the `n` functions).
    unsafe fn set(&self, name: &CStr, value: &CStr) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            if self.was_empty {
                ffi::apr_table_addn(self.table, name.as_ptr(), value.as_ptr());
            } else {
                ffi::apr_table_setn(self.table, name.as_ptr(), value.as_ptr());
            }
        }
    }

    /// Puts `name` in, with `value()`, only where the table has no
    /// variable of that name in any case. A table that was empty holds
    /// only the variables put in here, and the callers ask for names none
    /// of the others has.
    ///
    /// # Safety
    /// As [`Table::set`].
    unsafe fn set_if_missing<'a>(&self, name: &CStr, value: impl FnOnce() -> &'a CStr) {
        // SAFETY: guaranteed by the caller; the name is NUL-terminated.
        if self.was_empty || unsafe { ffi::apr_table_get(self.table, name.as_ptr()) }.is_null() {
            // SAFETY: as above.
            unsafe { self.set(name, value()) };
        }
    }
}

fn replace<'a>(vars: &mut [Var<'a>], name: &[u8], value: &'a [u8]) -> bool {
    let mut found = false;
    for var in vars.iter_mut() {
        if var.0.len() == name.len() && var.0.eq_ignore_ascii_case(name) {
            var.1 = value;
            found = true;
        }
    }
    found
}

/// `bytes` copied into the request pool, NUL-terminated.
///
/// # Safety
/// `r` must be the live request; the copy lives as long as its pool.
unsafe fn pool_copy<'a>(r: *mut ffi::request_rec, bytes: &[u8]) -> &'a CStr {
    // SAFETY: r's pool is live; apr_pstrmemdup copies exactly `len`
    // readable bytes and adds a NUL, valid until the pool is cleared, after
    // the handler. The bytes come from C strings or digits: no NUL within.
    unsafe { CStr::from_ptr(ffi::apr_pstrmemdup((*r).pool, bytes.as_ptr().cast(), bytes.len())) }
}

/// A port number in decimal, as Apache's `%u`/`apr_itoa` writes it.
///
/// # Safety
/// As [`pool_copy`].
unsafe fn decimal<'a>(r: *mut ffi::request_rec, n: u16) -> &'a CStr {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: guaranteed by the caller.
    unsafe { pool_copy(r, &digits[at..]) }
}

/// A header's variable name (`Accept-Language` -> `HTTP_ACCEPT_LANGUAGE`),
/// or None for a name Apache does not export: anything but letters,
/// digits and `-` (an `_` would let a client pass itself off as another
/// header).
///
/// # Safety
/// As [`pool_copy`].
unsafe fn header_variable<'a>(r: *mut ffi::request_rec, header: &[u8]) -> Option<&'a CStr> {
    if !header.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-') {
        return None;
    }
    let len = 5 + header.len();
    // SAFETY: as in pool_copy: `len + 1` writable bytes of the live pool,
    // all written below (letters, digits and `_`, then the NUL) before the
    // string is made.
    unsafe {
        let p = ffi::apr_palloc((*r).pool, len + 1).cast::<u8>();
        let name = std::slice::from_raw_parts_mut(p, len + 1);
        name[..5].copy_from_slice(b"HTTP_");
        for (to, &c) in name[5..len].iter_mut().zip(header) {
            *to = if c == b'-' { b'_' } else { c.to_ascii_uppercase() };
        }
        name[len] = 0;
        Some(CStr::from_bytes_with_nul_unchecked(name))
    }
}

/// The process's value of an environment variable, copied into the pool
/// (another thread may change the environment while the request runs).
///
/// # Safety
/// As [`pool_copy`].
unsafe fn process_env<'a>(r: *mut ffi::request_rec, name: &CStr) -> Option<&'a CStr> {
    // SAFETY: getenv takes a NUL-terminated name; its result is read at
    // once, as Apache's own env2env reads it.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        (!value.is_null()).then(|| pool_copy(r, CStr::from_ptr(value).to_bytes()))
    }
}

/// `ap_add_common_vars`: the headers, then the server's, the connection's
/// and the user's variables.
///
/// # Safety
/// As [`append`].
unsafe fn common_vars<'a>(r: *mut ffi::request_rec, list: &mut List<'_, 'a>) {
    // SAFETY (whole block): r is live in its handler; every pointer read
    // is a field Apache filled for it, the tables' entries and the
    // strings the functions called return are NUL-terminated and live in
    // the request pool (or are static).
    unsafe {
        let core_dir = core_dir_config(r);
        let pass_auth = core_dir.is_some_and(|c| c.cgi_pass_auth() == consts::AP_CGI_PASS_AUTH_ON);
        let headers = ffi::apr_table_elts((*r).headers_in);
        let headers = std::slice::from_raw_parts((*headers).elts as *const ffi::apr_table_entry_t, (*headers).nelts as usize);
        for header in headers {
            if header.key.is_null() {
                continue;
            }
            let (key, value) = (c_str(header.key).to_bytes(), c_str(header.val));
            if key.eq_ignore_ascii_case(b"Content-type") {
                list.add(c"CONTENT_TYPE", value);
            } else if key.eq_ignore_ascii_case(b"Content-length") {
                list.add(c"CONTENT_LENGTH", value);
            } else if key.eq_ignore_ascii_case(b"Proxy") {
                // HTTP_PROXY would be taken for the proxy to use
                // (httpoxy): Apache never exports it.
            } else if key.eq_ignore_ascii_case(b"Authorization") || key.eq_ignore_ascii_case(b"Proxy-Authorization") {
                if pass_auth {
                    if let Some(name) = header_variable(r, key) {
                        list.add(name, value);
                    }
                }
            } else if let Some(name) = header_variable(r, key) {
                list.add(name, value);
            }
        }

        // Apache adds PATH next (the request's, else the process's, else
        // httpd.h's default), the search path of a CGI program. The
        // environ never shows it (src/wsgi/environ.rs), and a variable of
        // that name in another case would only take the value it already
        // has, so only the table gets it, and only where it has none.
        if let Some(table) = &list.table {
            // bindgen ends a string constant with its one NUL.
            let default = CStr::from_bytes_with_nul_unchecked(ffi::DEFAULT_PATH);
            table.set_if_missing(c"PATH", || process_env(r, c"PATH").unwrap_or(default));
        }
        // LD_LIBRARY_PATH is shown: the request's, else the process's, if
        // set. (Only a table that had variables before can hold one.)
        let library_path = if list.existing == 0 {
            std::ptr::null()
        } else {
            ffi::apr_table_get((*r).subprocess_env, c"LD_LIBRARY_PATH".as_ptr())
        };
        if !library_path.is_null() {
            list.add(c"LD_LIBRARY_PATH", c_str(library_path));
        } else if let Some(value) = process_env(r, c"LD_LIBRARY_PATH") {
            list.add(c"LD_LIBRARY_PATH", value);
        }

        list.add(c"SERVER_SIGNATURE", c_str(ffi::ap_psignature(c"".as_ptr(), r)));
        list.add(c"SERVER_SOFTWARE", c_str(ffi::ap_get_server_banner()));
        let server_name = ffi::ap_get_server_name_for_url(r);
        let server_name = if c_str(server_name).to_bytes().iter().any(|c| matches!(c, b'<' | b'>' | b'&' | b'"')) {
            ffi::ap_escape_html2((*r).pool, server_name, 0)
        } else {
            server_name
        };
        list.add(c"SERVER_NAME", c_str(server_name));
        list.add(c"SERVER_ADDR", c_str((*(*r).connection).local_ip));
        list.add(c"SERVER_PORT", decimal(r, ffi::ap_get_server_port(r)));
        let remote_host = ffi::ap_get_useragent_host(r, ffi::REMOTE_HOST as _, std::ptr::null_mut());
        if !remote_host.is_null() {
            list.add(c"REMOTE_HOST", c_str(remote_host));
        }
        list.add(c"REMOTE_ADDR", c_str((*r).useragent_ip));
        list.add(c"DOCUMENT_ROOT", c_str(ffi::ap_document_root(r)));
        list.add(c"REQUEST_SCHEME", c_str(ffi::ap_run_http_scheme(r)));
        list.add(c"CONTEXT_PREFIX", c_str(ffi::ap_context_prefix(r)));
        list.add(c"CONTEXT_DOCUMENT_ROOT", c_str(ffi::ap_context_document_root(r)));
        list.add(c"SERVER_ADMIN", c_str((*(*r).server).server_admin));
        let filename = c_str((*r).filename);
        let script_filename = match filename.to_bytes().iter().position(|&c| c == b'?') {
            // A proxied URL whose query the proxy keeps out of the name.
            Some(query) if !ffi::apr_table_get((*r).notes, c"proxy-noquery".as_ptr()).is_null() => {
                pool_copy(r, &filename.to_bytes()[..query])
            }
            _ => filename,
        };
        list.add(c"SCRIPT_FILENAME", script_filename);
        list.add(c"REMOTE_PORT", decimal(r, (*(*(*r).connection).client_addr).port));

        if !(*r).user.is_null() {
            list.add(c"REMOTE_USER", c_str((*r).user));
        } else {
            let mut back = (*r).prev;
            while !back.is_null() {
                if !(*back).user.is_null() {
                    list.add(c"REDIRECT_REMOTE_USER", c_str((*back).user));
                    break;
                }
                back = (*back).prev;
            }
        }
        if !(*r).ap_auth_type.is_null() {
            list.add(c"AUTH_TYPE", c_str((*r).ap_auth_type));
        }
        let ident = ffi::ap_get_remote_logname(r);
        if !ident.is_null() {
            list.add(c"REMOTE_IDENT", c_str(ident));
        }

        let prev = (*r).prev;
        if !prev.is_null() {
            let qualify = core_dir.is_some_and(|c| c.qualify_redirect_url() == consts::AP_CORE_CONFIG_ON);
            let url = if qualify { redirect_url(r, prev) } else { (*prev).uri.cast_const() };
            if !url.is_null() {
                list.add(c"REDIRECT_URL", c_str(url));
            }
            if !(*prev).args.is_null() {
                list.add(c"REDIRECT_QUERY_STRING", c_str((*prev).args));
            }
        }
    }
}

/// The full URL an internal redirect came from (`QualifyRedirectURL On`),
/// filling in the parts of the original URI the request line left out,
/// as Apache does (into the original request's parsed URI).
///
/// # Safety
/// `r` and `prev`, its original request, must be live.
unsafe fn redirect_url(r: *mut ffi::request_rec, prev: *mut ffi::request_rec) -> *const c_char {
    // SAFETY: both requests are live; the strings set are pool or static
    // strings that live as long as the connection's requests.
    unsafe {
        let uri = &mut (*prev).parsed_uri;
        if uri.scheme.is_null() {
            uri.scheme = ffi::ap_run_http_scheme(prev).cast_mut();
        }
        if uri.port == 0 {
            uri.port = ffi::ap_get_server_port(prev);
            uri.port_str = decimal(r, uri.port).as_ptr().cast_mut();
        }
        if uri.hostname.is_null() {
            uri.hostname = ffi::ap_get_server_name_for_url(prev).cast_mut();
        }
        ffi::apr_uri_unparse((*r).pool, uri, 0)
    }
}

/// `ap_add_cgi_vars`: GATEWAY_INTERFACE and PATH_TRANSLATED; the others
/// it sets the caller appends (see [`append`]).
///
/// # Safety
/// As [`append`].
unsafe fn cgi_vars<'a>(r: *mut ffi::request_rec, list: &mut List<'_, 'a>, path_translated: bool) {
    // SAFETY (whole block): as in common_vars.
    unsafe {
        list.set(c"GATEWAY_INTERFACE", c"CGI/1.1");
        list.set_other_spellings(c"SERVER_PROTOCOL", || c_str((*r).protocol));
        list.set_other_spellings(c"REQUEST_METHOD", || c_str((*r).method));
        list.set_other_spellings(c"QUERY_STRING", || c_str((*r).args));
        list.set_other_spellings(c"REQUEST_URI", || request_uri(r));
        list.set_other_spellings(c"SCRIPT_NAME", || c_str(apache_script_name(r)));
        let path_info = c_str((*r).path_info);
        if !path_info.is_empty() {
            list.set_other_spellings(c"PATH_INFO", || path_info);
            if path_translated {
                if let Some(translated) = translate(r) {
                    list.set(c"PATH_TRANSLATED", translated);
                }
            }
        } else if let Some(table) = &list.table {
            // mod_wsgi puts an empty PATH_INFO into the table where Apache
            // leaves none (the environ always has one).
            table.set_if_missing(c"PATH_INFO", || c"");
        }
    }
}

/// REQUEST_URI as `ap_add_cgi_vars` sets it: the request line's URI
/// (that of the original request after an internal redirect), unless
/// `CGIVar REQUEST_URI current-uri` asks for the current one.
///
/// # Safety
/// `r` must be the live request.
unsafe fn request_uri<'a>(r: *mut ffi::request_rec) -> &'a CStr {
    // SAFETY: r is live; the core's per-directory config and its hash of
    // CGIVar rules (null when none is configured) belong to it.
    unsafe {
        let rules = core_dir_config(r).map_or(std::ptr::null_mut(), |c| c.cgi_var_rules);
        if !rules.is_null() {
            let rule = ffi::apr_hash_get(rules, c"REQUEST_URI".as_ptr().cast(), -1);
            if !rule.is_null() && CStr::from_ptr(rule.cast()).to_bytes() == b"current-uri" {
                return c_str((*r).uri);
            }
        }
        let line = c_str((*r).the_request).to_bytes();
        let is_space = |c: &u8| c.is_ascii_whitespace();
        let after_method = line.iter().position(is_space).unwrap_or(line.len());
        let rest = &line[after_method..];
        let start = rest.iter().position(|c| !is_space(c)).unwrap_or(rest.len());
        let rest = &rest[start..];
        pool_copy(r, &rest[..rest.iter().position(is_space).unwrap_or(rest.len())])
    }
}

/// PATH_TRANSLATED: PATH_INFO mapped to a file name by a sub-request, as
/// `ap_add_cgi_vars` computes it (the file name plus whatever part of the
/// path the sub-request's own walk left as its PATH_INFO).
///
/// # Safety
/// `r` must be the live request, in its handler.
unsafe fn translate<'a>(r: *mut ffi::request_rec) -> Option<&'a CStr> {
    // SAFETY: r is live; the sub-request is made from it and destroyed
    // here, after its strings were copied into r's pool.
    unsafe {
        let escaped = ffi::ap_os_escape_path((*r).pool, (*r).path_info, 1);
        let sub = ffi::ap_sub_req_lookup_uri(escaped, r, std::ptr::null_mut());
        let translated = if (*sub).filename.is_null() {
            None
        } else {
            let (name, rest) = (c_bytes((*sub).filename), c_bytes((*sub).path_info));
            let len = name.len() + rest.len();
            let joined = ffi::apr_palloc((*r).pool, len + 1).cast::<u8>();
            std::ptr::copy_nonoverlapping(name.as_ptr(), joined, name.len());
            std::ptr::copy_nonoverlapping(rest.as_ptr(), joined.add(name.len()), rest.len());
            *joined.add(len) = 0;
            Some(CStr::from_bytes_with_nul_unchecked(std::slice::from_raw_parts(joined, len + 1)))
        };
        ffi::ap_destroy_sub_req(sub);
        translated
    }
}
