//! The data-encryption keyring and the seal / open / rotate operations.

use std::collections::BTreeSet;
use std::fmt;

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead as _, KeyInit as _, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use super::sealed::{MAX_KEY_ID_LEN, MAX_PLAINTEXT_LEN, NONCE_LEN, valid_key_id};
use super::{SealContext, Sealed, SecretError};

/// One key: its id and the cipher keyed with it. The raw key bytes are not kept; the AES round keys
/// and the GHASH key inside the cipher are zeroised on drop (the `zeroize` features of `aes` and
/// `polyval`, switched on in `Cargo.toml`).
#[derive(Clone)]
struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys secrets at rest are sealed under, parsed from `SIXPENCE_DATA_KEYS`
/// (`kid:base64(32 bytes)`, comma-separated, newest first).
///
/// The first key is current: every seal uses it. The others only open what was sealed before the
/// current key was prepended, until a re-encryption pass ([`Keyring::reseal`]) has moved every
/// record and the operator removes them. Never shows key material in `Debug` or `Display`.
#[derive(Clone)]
pub struct Keyring {
    current: DataKey,
    /// Older keys, newest first: open only.
    previous: Vec<DataKey>,
}

impl Keyring {
    /// Parses the `SIXPENCE_DATA_KEYS` value. Same rules as the start-up check in `config`, plus a
    /// [`MAX_KEY_ID_LEN`] bound on key ids (so every sealed value's string form parses back).
    pub fn parse(raw: &SecretString) -> Result<Self, SecretError> {
        let invalid = |reason: String| SecretError::KeyringInvalid { reason };
        let mut seen = BTreeSet::new();
        let mut keys = Vec::new();
        for (index, entry) in raw.expose_secret().split(',').enumerate() {
            let number = index + 1;
            let Some((id, key)) = entry.trim().split_once(':') else {
                return Err(invalid(format!("entry {number} is not `kid:key`")));
            };
            // Checked before the id is ever echoed: a valid id cannot be a base64 key (it has no
            // `=`, `+` or `/` and is at most 64 characters), so an entry written the wrong way
            // round is reported by position only.
            if !valid_key_id(id) {
                return Err(invalid(format!(
                    "entry {number} has an invalid key id (1 to {MAX_KEY_ID_LEN} of A-Z a-z 0-9 - _)"
                )));
            }
            if !seen.insert(id) {
                return Err(invalid(format!("key id `{id}` appears twice")));
            }
            // Decoded into a fixed, wiped buffer (no reallocation leaving copies behind); 48 bytes
            // hold any base64 text whose decoded length could be 32.
            let mut bytes = Zeroizing::new([0u8; 48]);
            let cipher = match STANDARD.decode_slice(key, &mut bytes[..]) {
                Ok(32) => Aes256Gcm::new_from_slice(&bytes[..32]).ok(),
                _ => None,
            };
            let Some(cipher) = cipher else {
                return Err(invalid(format!("key `{id}` is not 32 bytes of base64")));
            };
            keys.push(DataKey {
                id: id.to_owned(),
                cipher,
            });
        }
        let mut keys = keys.into_iter();
        let Some(current) = keys.next() else {
            return Err(invalid("no keys".to_owned()));
        };
        Ok(Self {
            current,
            previous: keys.collect(),
        })
    }

    /// The id every new seal uses.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Every key id, current first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(|key| key.id.as_str())
    }

    /// Encrypts `plaintext` under the current key with a fresh random nonce, bound to `context`.
    ///
    /// Fails only for a plaintext over [`MAX_PLAINTEXT_LEN`] or if the OS RNG fails (then nothing
    /// is sealed; never a fixed or reused nonce).
    pub fn seal(
        &self,
        plaintext: &SecretString,
        context: &SealContext,
    ) -> Result<Sealed, SecretError> {
        let key = &self.current;
        let plaintext = plaintext.expose_secret().as_bytes();
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(SecretError::TooLarge {
                len: plaintext.len(),
                limit: MAX_PLAINTEXT_LEN,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| SecretError::SealFailed)?;
        let aad = context.associated_data(&key.id);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::SealFailed)?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Decrypts `sealed` with the key it names, checking that it was sealed for `context`.
    ///
    /// [`SecretError::UnknownKeyId`] if the keyring lacks its key; [`SecretError::DecryptionFailed`]
    /// for every authentication failure (tampering, wrong context, wrong key material).
    pub fn open(
        &self,
        sealed: &Sealed,
        context: &SealContext,
    ) -> Result<SecretString, SecretError> {
        let key = self.key(&sealed.key_id)?;
        let aad = context.associated_data(&key.id);
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretError::DecryptionFailed)?;
        // Authentic, so sealed by us from a `str`; copied into an exactly-sized allocation so the
        // secret's box is not a reallocation that leaves the (wiped) buffer's contents elsewhere.
        let text = std::str::from_utf8(&plaintext).map_err(|_| SecretError::Malformed {
            reason: "plaintext is not UTF-8",
        })?;
        Ok(SecretString::from(text))
    }

    /// Whether `sealed` is under a key other than the current one, so a re-encryption pass should
    /// [`reseal`](Self::reseal) it.
    pub fn needs_rotation(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current.id
    }

    /// Opens `sealed` with the key it names and seals the plaintext again under the current key
    /// (fresh nonce, same context). The plaintext exists only inside this call and is wiped.
    pub fn reseal(&self, sealed: &Sealed, context: &SealContext) -> Result<Sealed, SecretError> {
        let plaintext = self.open(sealed, context)?;
        self.seal(&plaintext, context)
    }

    fn keys(&self) -> impl Iterator<Item = &DataKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    fn key(&self, key_id: &str) -> Result<&DataKey, SecretError> {
        self.keys()
            .find(|key| key.id == key_id)
            .ok_or_else(|| SecretError::UnknownKeyId {
                key_id: key_id.to_owned(),
            })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyring of {} key(s), current `{}`",
            1 + self.previous.len(),
            self.current.id
        )
    }
}
