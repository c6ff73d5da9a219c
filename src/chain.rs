//! The hash chain that makes the log tamper-evident: each event's SHA-256 covers its body and its predecessor's hash.
//!
//! Editing, deleting, inserting or reordering any stored event breaks either an event's own hash
//! or the link to its neighbour, and `ChainVerifier` names the first record where that happens.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::events::{EventBody, RecordedEvent};

/// The `previous_hash` of the very first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation, so a chargeledger hash can never be confused with a hash of other JSON.
const HASH_DOMAIN: &[u8] = b"chargeledger.event.v1\n";

/// The hex SHA-256 of an event body in its stored JSON form.
pub fn hash_body(body: &EventBody) -> String {
    hash_body_json(&encode_body(body))
}

/// The hex SHA-256 of an event body's JSON bytes, as stored. Verification hashes the bytes it
/// read rather than a re-encoding of what it decoded: cheaper, and it proves the stored bytes
/// themselves are the ones sealed.
pub fn hash_body_json(body_json: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(HASH_DOMAIN);
    hasher.update(body_json);
    hex::encode(hasher.finalize())
}

fn encode_body(body: &EventBody) -> Vec<u8> {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no custom
    // serializers that error. If it ever did, that is a bug, and hashing empty bytes instead
    // would seal a record that says nothing: stop loudly.
    serde_json::to_vec(body)
        .expect("an event body always encodes as JSON; failing to is a bug in chargeledger")
}

/// Seal a body into a recorded event by computing its hash.
pub fn seal(body: EventBody) -> RecordedEvent {
    seal_encoded(body).0
}

/// Seal a body and return, beside the event, its stored JSON (`{"body":…,"hash":"…"}`, exactly
/// what `serde_json::to_vec` of the event gives), encoding the body once for both.
pub fn seal_encoded(body: EventBody) -> (RecordedEvent, Vec<u8>) {
    let body_json = encode_body(&body);
    let hash = hash_body_json(&body_json);
    let mut stored = Vec::with_capacity(body_json.len() + hash.len() + 20);
    stored.extend_from_slice(br#"{"body":"#);
    stored.extend_from_slice(&body_json);
    stored.extend_from_slice(br#","hash":""#);
    stored.extend_from_slice(hash.as_bytes());
    stored.extend_from_slice(br#""}"#);
    (RecordedEvent { body, hash }, stored)
}

/// The first place where the log stops being the log that was written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainFault {
    #[error(
        "event #{sequence} was altered: its stored hash {stored} does not match its content (hash {computed})"
    )]
    HashMismatch {
        sequence: u64,
        stored: String,
        computed: String,
    },
    #[error(
        "event #{sequence} does not follow its predecessor: it names previous hash {found}, but the event before it has hash {expected}"
    )]
    BrokenLink {
        sequence: u64,
        expected: String,
        found: String,
    },
    #[error(
        "the log skips from event #{previous} to event #{found}: events are missing, inserted or reordered"
    )]
    SequenceGap { previous: u64, found: u64 },
    #[error("event stored under key #{key} claims to be event #{found}")]
    MisplacedEvent { key: u64, found: u64 },
}

impl ChainFault {
    /// The sequence number of the first bad record.
    pub fn sequence(&self) -> u64 {
        match self {
            ChainFault::HashMismatch { sequence, .. } | ChainFault::BrokenLink { sequence, .. } => {
                *sequence
            }
            ChainFault::SequenceGap { found, .. } => *found,
            ChainFault::MisplacedEvent { key, .. } => *key,
        }
    }
}

/// Walks events in log order and checks each against the one before it.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_sequence: u64,
    last_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier::from_genesis()
    }
}

impl ChainVerifier {
    /// Start before the first event.
    pub fn from_genesis() -> Self {
        ChainVerifier {
            last_sequence: 0,
            last_hash: GENESIS_HASH.to_string(),
        }
    }

    /// Start after a known event (used to check only the tail of a long log).
    pub fn after(sequence: u64, hash: String) -> Self {
        ChainVerifier {
            last_sequence: sequence,
            last_hash: hash,
        }
    }

    /// Check the next event; on success it becomes the new predecessor.
    pub fn check(&mut self, event: &RecordedEvent) -> Result<(), ChainFault> {
        self.check_hashed(event, &hash_body(&event.body))
    }

    /// `check`, given the hash of the event's body as stored (`hash_body_json` of its bytes).
    pub fn check_hashed(
        &mut self,
        event: &RecordedEvent,
        computed_hash: &str,
    ) -> Result<(), ChainFault> {
        let sequence = event.body.sequence;
        if sequence != self.last_sequence + 1 {
            return Err(ChainFault::SequenceGap {
                previous: self.last_sequence,
                found: sequence,
            });
        }
        if computed_hash != event.hash {
            return Err(ChainFault::HashMismatch {
                sequence,
                stored: event.hash.clone(),
                computed: computed_hash.to_string(),
            });
        }
        if event.body.previous_hash != self.last_hash {
            return Err(ChainFault::BrokenLink {
                sequence,
                expected: self.last_hash.clone(),
                found: event.body.previous_hash.clone(),
            });
        }
        self.last_sequence = sequence;
        self.last_hash = event.hash.clone();
        Ok(())
    }

    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }
}
