//! The time service phones set their clocks from (option 42, `_ntp._udp`).

pub mod sntp;
