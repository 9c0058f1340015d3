//! Development sign-in: tokens a local run accepts without an Entra tenant.
//!
//! The signing key is an Ed25519 key derived from the `SIXPENCE_DEV_AUTH` passphrase (SHA-256 of a
//! fixed label and the passphrase is the key's seed). Deriving it, rather than keeping a key file,
//! means `sixpence dev-token` and the running app agree with no shared file and no start-up step,
//! and Ed25519 keys derive instantly (an RSA key would take seconds to generate). The passphrase is
//! in `local.settings.example.json` for everyone to read, which is fine because:
//! - config refuses `SIXPENCE_DEV_AUTH` unless `SIXPENCE_ENVIRONMENT=development`;
//! - [`super::Authenticator`] builds the development verifier only in development, so in production
//!   an EdDSA token is refused for its algorithm before any key is looked at;
//! - development tokens have their own issuer and audience, which Entra tokens never carry.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{CLOCK_SKEW, Reason};
use crate::config::DEV_AUTH;

/// `iss` of every development token; no Entra issuer looks like it.
pub const DEV_ISSUER: &str = "urn:sixpence:dev-auth";
/// `aud` of every development token.
pub const DEV_AUDIENCE: &str = "urn:sixpence:dev-api";
/// `kid` of the development key.
pub const DEV_KEY_ID: &str = "sixpence-dev";
/// The tenant development users belong to unless `--tenant` says otherwise.
pub const DEFAULT_DEV_TENANT: Uuid = Uuid::from_u128(0x5e7e_0000_0000_4000_8000_0000_0000_de40);

/// The development signing key pair.
pub(crate) struct DevKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl DevKey {
    pub fn derive(passphrase: &SecretString) -> anyhow::Result<Self> {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"sixpence dev-auth ed25519 v1\n")
            .chain_update(passphrase.expose_secret().as_bytes())
            .finalize()
            .into();
        // PKCS#8 v1 of an Ed25519 private key (RFC 8410): a fixed 16-byte prefix, then the seed.
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&[
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ]);
        der.extend_from_slice(&seed);
        let encoding = EncodingKey::from_ed_der(&der);
        let public = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .context("cannot derive the development public key")?;
        let decoding =
            DecodingKey::from_jwk(&public).context("cannot load the development public key")?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_audience(&[DEV_AUDIENCE]);
        Ok(Self {
            encoding,
            decoding,
            validation,
        })
    }

    pub fn verify(&self, token: &str) -> Result<super::Claims, Reason> {
        jsonwebtoken::decode::<super::Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| Reason::from_jwt(&err))
    }

    pub fn mint(&self, request: &DevTokenRequest, now: u64) -> anyhow::Result<String> {
        let email = request.email.trim();
        if !(email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()))
        {
            bail!("--user must be an email address");
        }
        let tenant = request.tenant.unwrap_or(DEFAULT_DEV_TENANT);
        let lifetime = request.lifetime.as_secs().max(60);
        let claims = DevClaims {
            iss: DEV_ISSUER,
            aud: DEV_AUDIENCE,
            tid: tenant,
            oid: dev_user_id(tenant, email),
            scp: "access_as_user",
            email,
            xms_edov: true,
            preferred_username: email,
            name: request
                .name
                .as_deref()
                .unwrap_or_else(|| email.split('@').next().unwrap_or(email)),
            iat: now,
            nbf: now,
            exp: now + lifetime,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(DEV_KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("cannot sign the token")
    }
}

/// What `sixpence dev-token` asks for.
#[derive(Debug, Clone)]
pub struct DevTokenRequest {
    pub email: String,
    pub tenant: Option<Uuid>,
    pub name: Option<String>,
    pub lifetime: Duration,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    tid: Uuid,
    oid: Uuid,
    scp: &'a str,
    email: &'a str,
    xms_edov: bool,
    preferred_username: &'a str,
    name: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The same (tenant, email) always gets the same object id, so a developer stays the same user
/// across tokens, as a real Entra user does.
fn dev_user_id(tenant: Uuid, email: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"sixpence dev-auth oid v1\n")
        .chain_update(tenant.as_bytes())
        .chain_update(email.to_ascii_lowercase().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Mints a development token signed with the key derived from `passphrase`.
pub fn mint_dev_token(
    passphrase: &SecretString,
    request: &DevTokenRequest,
) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    DevKey::derive(passphrase)?.mint(request, now)
}

/// Reads the development passphrase from a `local.settings.json` (what `func start` and the local
/// host read), so `sixpence dev-token` works in a fresh clone without exporting anything.
pub fn passphrase_from_local_settings(path: &Path) -> anyhow::Result<Option<SecretString>> {
    let raw = match std::fs::read_to_string(path) {
        Ok(raw) => raw,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let settings: serde_json::Value =
        serde_json::from_str(&raw).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(settings
        .get("Values")
        .and_then(|values| values.get(DEV_AUTH))
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(|value| SecretString::from(value.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(email: &str) -> DevTokenRequest {
        DevTokenRequest {
            email: email.to_owned(),
            tenant: None,
            name: None,
            lifetime: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_same_passphrase_derives_the_same_key() {
        let minted = mint_dev_token(&SecretString::from("one"), &request("alice@example.com"))
            .expect("token");
        let same = DevKey::derive(&SecretString::from("one")).expect("key");
        let other = DevKey::derive(&SecretString::from("two")).expect("key");
        let claims = same.verify(&minted).expect("verifies");
        assert_eq!(other.verify(&minted).err(), Some(Reason::BadSignature));
        assert_eq!(claims.tid, DEFAULT_DEV_TENANT.to_string());
    }

    #[test]
    fn a_user_keeps_one_object_id_per_tenant() {
        let tenant = DEFAULT_DEV_TENANT;
        assert_eq!(
            dev_user_id(tenant, "Alice@Example.com"),
            dev_user_id(tenant, "alice@example.com")
        );
        assert_ne!(
            dev_user_id(tenant, "alice@example.com"),
            dev_user_id(Uuid::nil(), "alice@example.com")
        );
    }

    #[test]
    fn a_user_must_be_an_email_address() {
        assert!(mint_dev_token(&SecretString::from("one"), &request("alice")).is_err());
    }

    #[test]
    fn the_passphrase_is_read_from_local_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("local.settings.json");
        assert!(
            passphrase_from_local_settings(&path)
                .expect("read")
                .is_none()
        );
        std::fs::write(&path, r#"{"Values": {"SIXPENCE_DEV_AUTH": "from-file"}}"#).expect("write");
        let passphrase = passphrase_from_local_settings(&path)
            .expect("read")
            .expect("set");
        assert_eq!(passphrase.expose_secret(), "from-file");
    }
}
