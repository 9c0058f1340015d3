//! The sealed form of a secret, its storage string, and the context it is bound to.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::SecretError;

/// The first segment of every stored string; a future format gets `v2` and its own parser branch.
pub const FORMAT_VERSION: &str = "v1";
/// AES-GCM nonce length (96 bits), drawn from the OS RNG for every seal.
pub const NONCE_LEN: usize = 12;
/// AES-GCM authentication tag length, appended to the ciphertext.
pub const TAG_LEN: usize = 16;
/// Longest plaintext [`Keyring::seal`](super::Keyring::seal) accepts. Client secrets are ~40
/// characters and a PEM certificate a few KiB; the bound keeps stored strings inside one table property.
pub const MAX_PLAINTEXT_LEN: usize = 16 * 1024;
/// Longest key id, in the keyring and in stored strings.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Purpose label at the start of the associated data, so a ciphertext made for anything else under
/// the same key (should a key ever be shared) cannot be passed off as a secret at rest, or vice versa.
const AAD_PURPOSE: &[u8] = b"sixpence/secret-at-rest";

/// Where a sealed secret lives. It is authenticated as associated data, so a ciphertext copied to
/// another workspace or another record does not open there.
///
/// Both fields are compared byte for byte: always build them the same way. `workspace_id` is the
/// workspace's canonical form (`WorkspaceId`'s `Display`, a lowercase hyphenated UUID); `record`
/// names the record and field, e.g. `connection/<id>/client-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealContext {
    pub workspace_id: String,
    pub record: String,
}

impl SealContext {
    pub fn new(workspace_id: impl Into<String>, record: impl Into<String>) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            record: record.into(),
        }
    }

    /// The associated data for a seal under `key_id`: purpose, format version, key id, workspace and
    /// record, each prefixed by its length (u64, big-endian), so no two distinct contexts serialise
    /// to the same bytes (`("ab", "c")` and `("a", "bc")` differ).
    pub(super) fn associated_data(&self, key_id: &str) -> Vec<u8> {
        let fields: [&[u8]; 5] = [
            AAD_PURPOSE,
            FORMAT_VERSION.as_bytes(),
            key_id.as_bytes(),
            self.workspace_id.as_bytes(),
            self.record.as_bytes(),
        ];
        let mut aad = Vec::with_capacity(fields.iter().map(|f| 8 + f.len()).sum());
        for field in fields {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad
    }
}

/// A secret encrypted under one key of the keyring: AES-256-GCM ciphertext (tag appended), the
/// nonce, and the id of the key. Not secret itself, but never useful in logs either.
///
/// Stored as `v1.<key id>.<base64url nonce>.<base64url ciphertext>` (unpadded), via [`fmt::Display`]
/// / [`FromStr`] or serde (a string). Each value has exactly one string form.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub(super) key_id: String,
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) ciphertext: Vec<u8>,
}

impl Sealed {
    /// The id of the key it was sealed under.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// Ciphertext followed by the tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
}

/// Whether `key_id` is a well-formed key id: 1 to [`MAX_KEY_ID_LEN`] ASCII letters, digits, `-`, `_`
/// (so it never contains the `.` separator and is safe to name in errors and logs).
pub(super) fn valid_key_id(key_id: &str) -> bool {
    !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID_LEN
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{FORMAT_VERSION}.{}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(self.nonce),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        )
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl FromStr for Sealed {
    type Err = SecretError;

    fn from_str(stored: &str) -> Result<Self, SecretError> {
        let malformed = |reason| SecretError::Malformed { reason };
        // Longest legitimate form; checked first so nothing large is decoded.
        let max_len = FORMAT_VERSION.len()
            + MAX_KEY_ID_LEN
            + (NONCE_LEN * 4).div_ceil(3)
            + ((MAX_PLAINTEXT_LEN + TAG_LEN) * 4).div_ceil(3)
            + 3;
        if stored.len() > max_len {
            return Err(malformed("longer than any sealed secret"));
        }
        let mut parts = stored.split('.');
        let (Some(version), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed("expected four `.`-separated parts"));
        };
        if version != FORMAT_VERSION {
            return Err(malformed("unsupported format version"));
        }
        if !valid_key_id(key_id) {
            return Err(malformed("invalid key id"));
        }
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(malformed("nonce is not 12 bytes of unpadded base64url"))?;
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| malformed("ciphertext is not unpadded base64url"))?;
        if ciphertext.len() < TAG_LEN {
            return Err(malformed(
                "ciphertext is shorter than the authentication tag",
            ));
        }
        if ciphertext.len() > MAX_PLAINTEXT_LEN + TAG_LEN {
            return Err(malformed("ciphertext is longer than any sealed secret"));
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            nonce,
            ciphertext,
        })
    }
}

impl serde::Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = String::deserialize(deserializer)?;
        stored.parse().map_err(serde::de::Error::custom)
    }
}
