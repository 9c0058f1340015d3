//! Sixpence.

pub mod storage;
