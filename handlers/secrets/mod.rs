//! Service-principal secrets at rest: sealed with AES-256-GCM under a keyring from
//! `SIXPENCE_DATA_KEYS`, bound to the workspace and record they belong to.
//!
//! # What it promises
//!
//! - **Encrypted at rest.** Storage only ever holds a [`Sealed`] value's string form
//!   (`v1.<key id>.<base64url nonce>.<base64url ciphertext+tag>`); the plaintext exists as a
//!   [`secrecy::SecretString`] in memory, only while it is used.
//! - **Bound to its place.** The associated data is the [`SealContext`] (workspace id and record name)
//!   with a purpose label, the format version and the key id, each length-prefixed. A ciphertext
//!   copied into another workspace's or another record's row fails to open there.
//! - **Never shown.** No `Debug`, `Display` or error of this module contains key material or
//!   plaintext; a malformed stored string is described, never echoed. Key material is zeroised on drop.
//! - **One failure for all forgeries.** Wrong key, tampered nonce, ciphertext or tag, wrong context:
//!   all are [`SecretError::DecryptionFailed`], so callers cannot learn which.
//!
//! # Why AES-256-GCM with random 96-bit nonces
//!
//! RustCrypto's `aes-gcm` (audited, pure Rust, hardware AES/CLMUL where available) is the AEAD a
//! security reviewer expects (NIST-approved, what Azure itself uses for data at rest). Random 96-bit
//! nonces are safe for up to 2^32 seals per key; Sixpence seals a handful of secrets per connection
//! (~50,000 connections at the design scale, plus one reseal each per rotation), seven orders of
//! magnitude below that, and rotation starts a fresh key. XChaCha20-Poly1305 would lift the
//! nonce bound we do not approach, at the price of a less familiar primitive in the review.
//!
//! # Rotating keys
//!
//! 1. The operator generates a key (`openssl rand -base64 32`) and *prepends* `newkid:<key>` to the
//!    `SIXPENCE_DATA_KEYS` Key Vault secret. From the next start every seal uses it; values under older
//!    keys still open.
//! 2. A re-encryption pass (the connections work's `rotate-secrets` command) walks every workspace's
//!    records holding a sealed value, parses it, and where [`Keyring::needs_rotation`] is true writes
//!    [`Keyring::reseal`]'s result back with `If-Match` on the ETag it read; on a version mismatch it
//!    re-reads and decides again (another writer may have replaced or already resealed the value).
//!    It is idempotent and resumable (moved records no longer need rotation) and reports how many
//!    values remain under each non-current key id, and any [`SecretError::UnknownKeyId`] or
//!    [`SecretError::DecryptionFailed`] by record, without values.
//! 3. Once a pass reports nothing left under an old key id, the operator removes that key from the
//!    setting. A value still sealed under a removed key fails with [`SecretError::UnknownKeyId`] naming
//!    it, so a premature removal is diagnosable (and reversible by putting the key back).

mod error;
mod keyring;
mod sealed;
#[cfg(test)]
mod tests;

pub use error::SecretError;
pub use keyring::Keyring;
pub use sealed::{
    FORMAT_VERSION, MAX_KEY_ID_LEN, MAX_PLAINTEXT_LEN, NONCE_LEN, SealContext, Sealed, TAG_LEN,
};
