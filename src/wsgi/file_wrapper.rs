//! `wsgi.file_wrapper`: turns a file-like object into a response iterable.
//! When the object is a regular file, the handler sends the file itself
//! (Apache can then use sendfile); otherwise it is read in blocks.

use pyo3::prelude::*;
use std::fs::File;
use std::os::fd::{BorrowedFd, RawFd};

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
}

/// The part of a regular file a response sends: from the file's current
/// position to its end.
pub struct FileRegion {
    /// A duplicate of the application's descriptor, so closing the Python
    /// file (close() runs before Apache has written the data) cannot pull
    /// the file out from under Apache.
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl FileWrapper {
    /// The file behind the wrapper, if it is a regular file with a
    /// descriptor. Anything unusual (no fileno(), a pipe, a socket, a
    /// failing tell()) answers None and the body is read in blocks.
    pub fn file_region(&self, py: Python<'_>) -> Option<FileRegion> {
        let filelike = self.filelike.bind(py);
        let fd: RawFd = filelike.call_method0("fileno").ok()?.extract().ok()?;
        if fd < 0 {
            return None;
        }
        // Python's position, which accounts for data it has buffered.
        let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
        // SAFETY: fd is open (fileno() just returned it, and the file
        // object is alive); it is only borrowed for the dup below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let file = File::from(borrowed.try_clone_to_owned().ok()?);
        let metadata = file.metadata().ok()?;
        if !metadata.is_file() {
            return None;
        }
        let len = metadata.len().saturating_sub(offset);
        Some(FileRegion { file, offset, len })
    }
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self { filelike, block_size: blksize.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self.filelike.bind(py).call_method1("read", (self.block_size,))?;
        Ok((block.len()? > 0).then_some(block))
    }

    /// PEP 3333: close() of the iterable closes the file, if it can be.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.filelike.bind(py).getattr_opt("close")? {
            Some(close) => close.call0().map(drop),
            None => Ok(()),
        }
    }
}
