//! Publisher keys and signatures.
//!
//! A publisher signs one message per plugin version:
//!
//! ```text
//! "pf-plugin-signature-v1\n" ‖ sha256(manifest bytes) ‖ sha256(component bytes)
//! ```
//!
//! so a signature covers every byte of the manifest (name, version, world,
//! limits, schema) and, through the component digest, every byte of the
//! code. The manifest also records the component digest; the admission check
//! compares both with the file on disk.
//!
//! Keys are ed25519 (`ed25519-dalek`). A public key is written
//! `ed25519:` + 64 hex digits; a secret key file holds
//! `pf-ed25519-secret:` + 64 hex digits of the seed, and is created readable
//! by its owner only.

use crate::{read_capped, sha256, Digest};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

const DOMAIN: &[u8] = b"pf-plugin-signature-v1\n";
const SECRET_PREFIX: &str = "pf-ed25519-secret:";

/// Signature file format.
pub const FORMAT: u32 = 1;

/// Most signatures one file may carry.
pub const MAX_SIGNATURES: usize = 32;

/// Largest signature file read.
pub const MAX_BYTES: u64 = 64 << 10;

/// A key or signature problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key, signature or file is malformed.
    #[error("{0}")]
    Malformed(String),
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub VerifyingKey);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:")?;
        for b in self.0.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        let hex = s.strip_prefix("ed25519:").ok_or_else(|| {
            KeyError::Malformed(
                "a public key is written `ed25519:` followed by 64 hex digits".into(),
            )
        })?;
        let bytes = pf_manifest::parse_hex32(hex).ok_or_else(|| {
            KeyError::Malformed("a public key needs 64 hex digits after `ed25519:`".into())
        })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::Malformed("the public key is not a valid ed25519 point".into()))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl PublicKey {
    /// Reads a public key file (`ed25519:…`, optionally after `#` comment
    /// lines).
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_text(path)?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        line.parse()
            .map_err(|e| KeyError::Malformed(format!("{}: {e}", path.display())))
    }
}

/// A publisher's secret (signing) key.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The key from a 32-byte seed (tests and reproducible fixtures).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key file's text.
    pub fn to_file_text(&self) -> String {
        let mut s = String::from(
            "# pf plugin signing key (ed25519). Keep it secret: whoever holds it can publish as you.\n",
        );
        s.push_str(SECRET_PREFIX);
        for b in self.0.to_bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
        s
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let text = read_text(path)?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(SECRET_PREFIX))
            .ok_or_else(|| {
                KeyError::Malformed(format!(
                    "{} is not a pf secret key (no `{SECRET_PREFIX}` line); create one with `pf plugin keygen`",
                    path.display()
                ))
            })?;
        let seed = pf_manifest::parse_hex32(&line[SECRET_PREFIX.len()..]).ok_or_else(|| {
            KeyError::Malformed(format!(
                "{}: the secret key needs 64 hex digits",
                path.display()
            ))
        })?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Signs a manifest (its exact bytes) and the component digest.
    pub fn sign(&self, signer: &str, manifest: &[u8], component: &Digest) -> Signature {
        let manifest_digest = sha256(manifest);
        let sig = self.0.sign(&message(&manifest_digest, component));
        Signature {
            signer: signer.to_string(),
            key: self.public(),
            manifest: manifest_digest,
            signature: to_hex(&sig.to_bytes()),
        }
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = read_capped(path, 16 << 10).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes)
        .map_err(|_| KeyError::Malformed(format!("{} is not text", path.display())))
}

fn message(manifest: &Digest, component: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 64);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&manifest.0);
    m.extend_from_slice(&component.0);
    m
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One publisher's signature over a manifest and a component digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Who signed, as they call themselves (informative; trust goes by key).
    pub signer: String,
    /// The public key that signed.
    pub key: PublicKey,
    /// SHA-256 of the manifest bytes that were signed.
    pub manifest: Digest,
    /// The ed25519 signature, 128 hex digits.
    pub signature: String,
}

impl Signature {
    /// Checks the signature against the manifest bytes and component digest.
    pub fn verify(&self, manifest: &[u8], component: &Digest) -> Result<(), String> {
        let actual = sha256(manifest);
        if actual != self.manifest {
            return Err(format!(
                "the signature by {} ({}) covers manifest {}, but the manifest is now {actual}: the manifest was changed after signing",
                self.signer, self.key, self.manifest
            ));
        }
        let bytes: [u8; 64] = parse_hex64(&self.signature)
            .ok_or_else(|| format!("the signature by {} is not 128 hex digits", self.signer))?;
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key
            .0
            .verify(&message(&actual, component), &sig)
            .map_err(|_| {
                format!(
                    "the signature by {} ({}) does not verify: the manifest, the component or the signature was changed",
                    self.signer, self.key
                )
            })
    }
}

fn parse_hex64(hex: &str) -> Option<[u8; 64]> {
    if hex.len() != 128 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The signatures kept beside a component (`NAME.sig.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// [`FORMAT`].
    pub format: u32,
    /// One entry per publisher who signed.
    pub signatures: Vec<Signature>,
}

impl Default for SignatureFile {
    fn default() -> Self {
        SignatureFile {
            format: FORMAT,
            signatures: Vec::new(),
        }
    }
}

impl SignatureFile {
    /// Parses a signature file. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<SignatureFile, KeyError> {
        if bytes.len() as u64 > MAX_BYTES {
            return Err(KeyError::Malformed(format!(
                "the signature file is larger than {MAX_BYTES} bytes"
            )));
        }
        let f: SignatureFile = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::Malformed(format!("the signature file is not valid: {e}")))?;
        if f.format != FORMAT {
            return Err(KeyError::Malformed(format!(
                "signature file format {} is not supported (this pf reads {FORMAT})",
                f.format
            )));
        }
        if f.signatures.len() > MAX_SIGNATURES {
            return Err(KeyError::Malformed(format!(
                "{} signatures; at most {MAX_SIGNATURES}",
                f.signatures.len()
            )));
        }
        Ok(f)
    }

    /// The file's bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("signatures serialize");
        v.push(b'\n');
        v
    }

    /// Adds a signature, replacing an older one by the same key.
    pub fn add(&mut self, sig: Signature) {
        self.signatures.retain(|s| s.key != sig.key);
        self.signatures.push(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_manifest_and_component() {
        let key = SecretKey::from_seed([1; 32]);
        let manifest = b"{\"format\":1}".to_vec();
        let component = sha256(b"component");
        let sig = key.sign("alice", &manifest, &component);
        sig.verify(&manifest, &component).unwrap();
        let e = sig.verify(b"{\"format\":2}", &component).unwrap_err();
        assert!(e.contains("changed after signing"), "{e}");
        let e = sig.verify(&manifest, &sha256(b"other")).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        let mut forged = sig.clone();
        forged.key = SecretKey::from_seed([2; 32]).public();
        assert!(forged.verify(&manifest, &component).is_err());
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, key.to_file_text()).unwrap();
        assert_eq!(SecretKey::read(&path).unwrap().public(), key.public());
        let public = key.public().to_string();
        assert_eq!(public.parse::<PublicKey>().unwrap(), key.public());
        std::fs::write(&path, format!("# a comment\n{public}\n")).unwrap();
        assert_eq!(PublicKey::read(&path).unwrap(), key.public());
        assert!("ed25519:zz".parse::<PublicKey>().is_err());
    }
}
