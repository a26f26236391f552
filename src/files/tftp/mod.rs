//! TFTP (RFC 1350, 2347-2349, 7440): reads from the tree, writes only into
//! the upload folder when one is configured.

mod mux;
pub mod pace;
pub mod packet;
pub mod receive;
pub mod server;
pub mod upload;
pub mod window;
