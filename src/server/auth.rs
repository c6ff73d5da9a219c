//! API keys: which account a request acts for, whether its key may write, and keys that are only ever held hashed and shown masked.
//!
//! Each secret key is one account: Stripe's `sk_test_…`/`sk_live_…`, whose publishable twin
//! (`pk_` with the same suffix) reads that account but may not write, or Omise's
//! `skey_test_…`/`skey_live_…`, whose public twin (`pkey_`) creates vault tokens. A key's dialect
//! decides which API its account speaks, so one account never shows up under the other's routes. Keys are kept as SHA-256 digests and
//! compared in constant time (`subtle`), so neither memory dumps nor timing reveal them. The
//! account name stored in events is derived from the key's digest, so an export of the log
//! carries no secret either.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The file in the data directory that keeps a generated key's digests.
pub const KEY_FILE_NAME: &str = "api-keys.json";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Secret,
    Publishable,
}

/// Which payment platform's API a key (and so its account) speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `/v1/...`, form-encoded, `sk_`/`pk_` keys.
    #[default]
    Stripe,
    /// `/charges`, `/tokens`, `/events`; JSON or form; `skey_`/`pkey_` keys.
    Omise,
}

/// Who a request acts as, once its key is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub kind: KeyKind,
    pub dialect: Dialect,
    pub livemode: bool,
    /// The key as logs and the audit trail show it: `sk_test_****abcd`.
    pub masked_key: String,
}

/// One recognised key, as stored: never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEntry {
    /// Hex SHA-256 of the key.
    digest: String,
    account: String,
    kind: KeyKind,
    /// Key files written before the Omise dialect hold Stripe keys only.
    #[serde(default)]
    dialect: Dialect,
    livemode: bool,
    masked_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

/// Why the configured keys cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "'{masked}' is not a secret key: configure keys that start with sk_test_ or sk_live_ (Stripe) or skey_test_ or skey_live_ (Omise); their publishable twins (pk_, pkey_) are recognised automatically"
    )]
    NotASecretKey { masked: String },
    #[error(
        "the key file {path} cannot be read ({detail}); delete it to have a new test key generated, or pass --api-key"
    )]
    UnreadableKeyFile { path: PathBuf, detail: String },
    #[error("the API keys file {path} cannot be used: {detail}")]
    UnusableApiKeysFile { path: PathBuf, detail: String },
    #[error("the key file {path} cannot be written: {source}")]
    KeyFileWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a request's key was refused; the HTTP layer turns these into Stripe's 401 bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid { masked_key: String },
}

/// The keys this server recognises.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    entries: Vec<KeyEntry>,
}

/// How the key ring was set up, for the startup message.
#[derive(Debug)]
pub enum KeySource {
    /// Keys from `--api-key` or `CHARGELEDGER_API_KEYS`.
    Configured,
    /// A key generated on an earlier start; only its digest is on disk.
    Stored,
    /// Keys generated now, a Stripe one and an Omise one: the only time they are shown in full.
    Generated {
        secret_key: String,
        omise_secret_key: String,
    },
}

impl KeyRing {
    /// Recognise these secret keys and their publishable twins.
    pub fn from_secret_keys<S: AsRef<str>>(keys: &[S]) -> Result<Self, KeyError> {
        let mut ring = KeyRing::default();
        for key in keys {
            let key = key.as_ref().trim();
            if key.is_empty() {
                continue;
            }
            ring.add_secret_key(key)?;
        }
        Ok(ring)
    }

    /// The configured keys if there are any; otherwise the key generated on an earlier start
    /// (kept as digests in `data_directory`), or a new test key, generated, stored and returned
    /// so it can be shown once.
    pub fn load_or_generate<S: AsRef<str>>(
        configured: &[S],
        data_directory: &Path,
    ) -> Result<(Self, KeySource), KeyError> {
        let ring = KeyRing::from_secret_keys(configured)?;
        if !ring.entries.is_empty() {
            return Ok((ring, KeySource::Configured));
        }
        let path = data_directory.join(KEY_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeyFile = serde_json::from_slice(&bytes).map_err(|error| {
                    KeyError::UnreadableKeyFile {
                        path: path.clone(),
                        detail: error.to_string(),
                    }
                })?;
                Ok((KeyRing { entries: file.keys }, KeySource::Stored))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret_key = crate::ids::random_id("sk_test_", 32);
                let omise_secret_key = crate::ids::omise_id("skey", false);
                let mut ring = KeyRing::default();
                ring.add_secret_key(&secret_key)?;
                ring.add_secret_key(&omise_secret_key)?;
                write_key_file(&path, &ring.entries)?;
                Ok((
                    ring,
                    KeySource::Generated {
                        secret_key,
                        omise_secret_key,
                    },
                ))
            }
            Err(error) => Err(KeyError::UnreadableKeyFile {
                path,
                detail: error.to_string(),
            }),
        }
    }

    fn add_secret_key(&mut self, key: &str) -> Result<(), KeyError> {
        // (secret prefix, publishable prefix, dialect, livemode)
        const KINDS: [(&str, &str, Dialect, bool); 4] = [
            ("sk_test_", "pk_test_", Dialect::Stripe, false),
            ("sk_live_", "pk_live_", Dialect::Stripe, true),
            ("skey_test_", "pkey_test_", Dialect::Omise, false),
            ("skey_live_", "pkey_live_", Dialect::Omise, true),
        ];
        let Some((suffix, publishable_prefix, dialect, livemode)) =
            KINDS
                .iter()
                .find_map(|(secret, publishable, dialect, livemode)| {
                    key.strip_prefix(secret)
                        .map(|suffix| (suffix, *publishable, *dialect, *livemode))
                })
        else {
            return Err(KeyError::NotASecretKey {
                masked: mask_key(key),
            });
        };
        let account = account_name(key, livemode);
        let publishable = format!("{publishable_prefix}{suffix}");
        for (presented, kind) in [(key, KeyKind::Secret), (&publishable, KeyKind::Publishable)] {
            self.entries.push(KeyEntry {
                digest: hex_digest(presented),
                account: account.clone(),
                kind,
                dialect,
                livemode,
                masked_key: mask_key(presented),
            });
        }
        Ok(())
    }

    /// The accounts this ring serves, one per secret key.
    /// The accounts Omise secret keys name (each once): whose authorizations expire.
    pub fn omise_accounts(&self) -> Vec<String> {
        let mut accounts: Vec<String> = self
            .entries
            .iter()
            .filter(|entry| entry.kind == KeyKind::Secret && entry.dialect == Dialect::Omise)
            .map(|entry| entry.account.clone())
            .collect();
        accounts.sort();
        accounts.dedup();
        accounts
    }

    pub fn accounts(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .filter(|entry| entry.kind == KeyKind::Secret)
            .map(|entry| (entry.account.clone(), entry.masked_key.clone()))
            .collect()
    }

    /// Recognise a presented key. Every entry is compared, in constant time, whatever matches.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Caller, AuthFailure> {
        let presented = match presented.map(str::trim) {
            None | Some("") => return Err(AuthFailure::Missing),
            Some(key) => key,
        };
        let digest = Sha256::digest(presented.as_bytes());
        let mut found: Option<&KeyEntry> = None;
        for entry in &self.entries {
            let mut stored = [0u8; 32];
            let matches = hex::decode_to_slice(&entry.digest, &mut stored).is_ok()
                && bool::from(stored.ct_eq(digest.as_slice()));
            if matches {
                found = Some(entry);
            }
        }
        found
            .map(|entry| Caller {
                account: entry.account.clone(),
                kind: entry.kind,
                dialect: entry.dialect,
                livemode: entry.livemode,
                masked_key: entry.masked_key.clone(),
            })
            .ok_or_else(|| AuthFailure::Invalid {
                masked_key: mask_key(presented),
            })
    }
}

/// The account a secret key acts for: derived from the key's digest, so it reveals nothing of
/// the key. Operators use it to address the account from the library (say, to set its policy).
pub fn account_for_key(secret_key: &str) -> Option<String> {
    let mut ring = KeyRing::default();
    ring.add_secret_key(secret_key).ok()?;
    ring.entries.first().map(|entry| entry.account.clone())
}

fn account_name(key: &str, livemode: bool) -> String {
    let mode = if livemode { "live" } else { "test" };
    format!("acct_{mode}_{}", &hex_digest(key)[..24])
}

fn hex_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The secret keys in a `--api-keys-file`: one per line, blank lines and `#` comments skipped.
/// A file others can read is used, with a warning: the keys in it are as good as published.
pub fn read_api_keys_file(path: &Path) -> Result<Vec<String>, KeyError> {
    let unreadable = |detail: String| KeyError::UnusableApiKeysFile {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|error| unreadable(error.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the API keys file can be read by other users; restrict it with chmod 600"
            );
        }
    }
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(unreadable(
            "it holds no key (one secret key per line)".into(),
        ));
    }
    Ok(keys)
}

fn write_key_file(path: &Path, entries: &[KeyEntry]) -> Result<(), KeyError> {
    let write_error = |source| KeyError::KeyFileWrite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        crate::store::permissions::create_private_directory(parent).map_err(write_error)?;
    }
    let file = KeyFile {
        keys: entries.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|error| write_error(error.into()))?;
    crate::store::permissions::write_private_file(path, &json).map_err(write_error)
}

/// A key as Stripe shows it in errors: its type prefix, `****`, and its last four characters.
pub fn mask_key(key: &str) -> String {
    const PREFIXES: [&str; 12] = [
        "sk_test_",
        "sk_live_",
        "pk_test_",
        "pk_live_",
        "rk_test_",
        "rk_live_",
        "skey_test_",
        "skey_live_",
        "pkey_test_",
        "pkey_live_",
        "sk_",
        "pk_",
    ];
    let prefix = PREFIXES
        .iter()
        .find(|prefix| key.starts_with(*prefix))
        .copied()
        .unwrap_or("");
    let characters: Vec<char> = key.chars().collect();
    let prefix_chars = prefix.chars().count();
    // Show the tail only when enough stays hidden.
    if characters.len() >= prefix_chars + 8 {
        let tail: String = characters[characters.len() - 4..].iter().collect();
        format!("{prefix}****{tail}")
    } else {
        format!("{prefix}****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_and_publishable_twins_share_an_account() {
        let ring = KeyRing::from_secret_keys(&["sk_test_abcdefgh1234"]).unwrap();
        let secret = ring.authenticate(Some("sk_test_abcdefgh1234")).unwrap();
        let publishable = ring.authenticate(Some("pk_test_abcdefgh1234")).unwrap();
        assert_eq!(secret.account, publishable.account);
        assert_eq!(secret.kind, KeyKind::Secret);
        assert_eq!(publishable.kind, KeyKind::Publishable);
        assert!(!secret.livemode);
        assert_eq!(secret.masked_key, "sk_test_****1234");
        assert!(!secret.account.contains("abcdefgh"));
    }

    #[test]
    fn live_keys_are_live_accounts_and_others_are_refused() {
        let ring = KeyRing::from_secret_keys(&["sk_live_zzzzzzzzzzzz"]).unwrap();
        let caller = ring.authenticate(Some("sk_live_zzzzzzzzzzzz")).unwrap();
        assert!(caller.livemode);
        assert!(caller.account.starts_with("acct_live_"));
        // The ledger reads the mode from the name the key kind gave the account.
        assert!(crate::ledger::account_is_live(&caller.account));
        assert_eq!(
            ring.authenticate(Some("sk_live_zzzzzzzzzzzy")),
            Err(AuthFailure::Invalid {
                masked_key: "sk_live_****zzzy".into()
            })
        );
        assert_eq!(ring.authenticate(None), Err(AuthFailure::Missing));
        assert!(KeyRing::from_secret_keys(&["pk_test_abc"]).is_err());
    }

    #[test]
    fn a_generated_key_is_stored_only_as_digests() {
        let directory = tempfile::tempdir().unwrap();
        let none: [&str; 0] = [];
        let (ring, source) = KeyRing::load_or_generate(&none, directory.path()).unwrap();
        let KeySource::Generated { secret_key, .. } = source else {
            panic!("the first start generates a key")
        };
        let stored = std::fs::read_to_string(directory.path().join(KEY_FILE_NAME)).unwrap();
        assert!(!stored.contains(&secret_key[8..]));
        let (again, source) = KeyRing::load_or_generate(&none, directory.path()).unwrap();
        assert!(matches!(source, KeySource::Stored));
        assert_eq!(
            again.authenticate(Some(&secret_key)).unwrap().account,
            ring.authenticate(Some(&secret_key)).unwrap().account
        );
    }

    #[test]
    fn omise_keys_are_omise_accounts_with_public_twins() {
        let ring =
            KeyRing::from_secret_keys(&["skey_test_5abcdefghijklmnop", "sk_test_abcdefgh1234"])
                .unwrap();
        let secret = ring
            .authenticate(Some("skey_test_5abcdefghijklmnop"))
            .unwrap();
        let public = ring
            .authenticate(Some("pkey_test_5abcdefghijklmnop"))
            .unwrap();
        assert_eq!(secret.dialect, Dialect::Omise);
        assert_eq!(public.kind, KeyKind::Publishable);
        assert_eq!(secret.account, public.account);
        assert_eq!(secret.masked_key, "skey_test_****mnop");
        let stripe = ring.authenticate(Some("sk_test_abcdefgh1234")).unwrap();
        assert_eq!(stripe.dialect, Dialect::Stripe);
        assert_ne!(stripe.account, secret.account);
        assert!(KeyRing::from_secret_keys(&["pkey_test_abc"]).is_err());
    }

    #[test]
    fn masks_keep_the_prefix_and_last_four() {
        assert_eq!(
            mask_key("sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
            "sk_test_****p7dc"
        );
        assert_eq!(mask_key("short"), "****");
        assert_eq!(mask_key("sk_test_ab"), "sk_test_****");
    }
}
