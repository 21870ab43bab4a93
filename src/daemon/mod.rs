//! Daemon mode: WSGI applications in process groups of their own, reached over a UNIX socket.

pub mod wire;
