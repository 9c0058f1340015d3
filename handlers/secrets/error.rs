//! What can go wrong sealing or opening a secret. No variant carries key material or plaintext: the
//! only values they hold are key ids (not secret) and sizes, and a malformed stored string is
//! described, never echoed (it could be anything, a raw secret stored by mistake included).

/// A failure to parse the keyring, or to seal, open or parse a sealed secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `SIXPENCE_DATA_KEYS` does not parse; the reason names the entry or key id, never a key.
    #[error("the data-encryption keyring is invalid: {reason}")]
    KeyringInvalid { reason: String },
    /// A stored sealed value is not in the `v1.<kid>.<nonce>.<ciphertext>` form (or, after
    /// authenticating, its plaintext is not UTF-8, which this module never seals).
    #[error("sealed secret is malformed: {reason}")]
    Malformed { reason: &'static str },
    /// The value was sealed under a key id the keyring does not hold (retired too early, or the
    /// keyring of another deployment).
    #[error("sealed secret names key id `{key_id}`, which is not in the keyring")]
    UnknownKeyId { key_id: String },
    /// Authentication failed: wrong key, tampered nonce or ciphertext, or a context (workspace,
    /// record) other than the one it was sealed for. Deliberately one variant for all of these.
    #[error(
        "sealed secret could not be opened (wrong key, tampered, or not sealed for this place)"
    )]
    DecryptionFailed,
    /// The plaintext is longer than [`MAX_PLAINTEXT_LEN`](super::MAX_PLAINTEXT_LEN).
    #[error("secret is too large to seal: {len} bytes, at most {limit}")]
    TooLarge { len: usize, limit: usize },
    /// The OS random number generator or the cipher failed; nothing was sealed.
    #[error("secret could not be sealed: the OS random source or the cipher failed")]
    SealFailed,
}
