//! What makes `dialtone serve` a well-behaved system daemon: telling the
//! service manager when it is ready, what it serves and that it is alive
//! (`notify`), and running as an unprivileged user that keeps only the
//! capabilities the servers need (`privileges`).

pub mod notify;
pub mod privileges;
pub mod reload;
pub mod status;
