//! Black-box tests of the Azure client: a scripted loopback Azure, virtual time, and the
//! azure-rest-api-specs examples in `tests/fixtures/azure/`.

mod fixtures;
mod requests;
mod support;
mod throttling;
