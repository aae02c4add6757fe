//! Secrets: [`Secret`], a string that must never reach a log line or a response, and
//! [`SecretKey`], which encrypts secrets stored in the database.

use std::fmt;

/// Wraps a secret so that `Debug` and `Display` print a placeholder instead of the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a MAC key, an outbound header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The key that encrypts stored secrets (provider credentials, agent headers and signing
/// secrets): 32 bytes, written as base64 in `ALERTGRAPH_SECRET_KEY`.
///
/// Sealed values are `version (1) || key id (4) || nonce (24) || XChaCha20-Poly1305 ciphertext`.
/// The random 192-bit nonce makes reuse negligible without a counter shared between processes;
/// the key id (the first bytes of the key's SHA-256) lets a wrong key be reported as such
/// instead of as corrupted data.
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
}

/// Why a key or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes written as base64 (e.g. `openssl rand -base64 32`)")]
    MalformedKey,
    #[error("this value was encrypted with a different secret key")]
    WrongKey,
    #[error("the encrypted value is damaged or was not made by alertgraph")]
    Corrupt,
}

const SEALED_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        SecretKey { key: rand::random() }
    }

    pub fn from_base64(text: &str) -> Result<SecretKey, SecretError> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::MalformedKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::MalformedKey)?;
        Ok(SecretKey { key })
    }

    /// The key as base64, for writing it to a key file or showing it once.
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    fn key_id(&self) -> [u8; KEY_ID_LEN] {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }

    fn cipher(&self) -> chacha20poly1305::XChaCha20Poly1305 {
        use chacha20poly1305::KeyInit;
        chacha20poly1305::XChaCha20Poly1305::new(&self.key.into())
    }

    /// Encrypts `plaintext`; the key id is also authenticated, as associated data.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, Payload};
        let nonce: [u8; NONCE_LEN] = rand::random();
        let key_id = self.key_id();
        let ciphertext = self
            .cipher()
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: &key_id })
            .expect("XChaCha20-Poly1305 encrypts any length that fits in memory");
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&key_id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a value made by [`SecretKey::seal`] with this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != SEALED_VERSION {
            return Err(SecretError::Corrupt);
        }
        let key_id = &sealed[1..1 + KEY_ID_LEN];
        if key_id != self.key_id() {
            return Err(SecretError::WrongKey);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..header]);
        self.cipher()
            .decrypt(&nonce.into(), Payload { msg: &sealed[header..], aad: key_id })
            .map_err(|_| SecretError::Corrupt)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"{\"api_key\": \"vt-123\"}");
        assert!(!sealed.windows(6).any(|w| w == b"vt-123"), "the plaintext is not visible");
        assert_eq!(key.open(&sealed).unwrap(), b"{\"api_key\": \"vt-123\"}");
        assert_eq!(SecretKey::generate().open(&sealed), Err(SecretError::WrongKey));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&tampered), Err(SecretError::Corrupt));
    }

    #[test]
    fn keys_round_trip_through_base64_and_bad_keys_are_refused() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.open(&key.seal(b"x")).unwrap(), b"x");
        assert_eq!(SecretKey::from_base64("c2hvcnQ=").unwrap_err(), SecretError::MalformedKey);
        assert_eq!(SecretKey::from_base64("not base64!").unwrap_err(), SecretError::MalformedKey);
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }
}
