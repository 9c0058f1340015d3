//! Sixpence.
