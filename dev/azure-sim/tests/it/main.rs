//! Integration tests of the simulated Azure tenant, over real HTTP on loopback.

mod common;
mod costs;
mod determinism;
mod faults;
mod paging;
mod shapes;
