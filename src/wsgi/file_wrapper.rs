//! `wsgi.file_wrapper`: turns a file-like object into a response iterable
//! that reads it in blocks, and whose close() closes the file.

use pyo3::prelude::*;

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
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
