//! An account, parsed once at the ledger's door: its name (a key prefix in storage, a label in logs) and its mode.

use std::fmt;
use std::ops::Deref;

use super::{LedgerError, Refusal};

/// The longest account name: a key prefix in storage and a label in logs.
pub const ACCOUNT_NAME_MAX_CHARS: usize = 255;

/// A checked account name and the mode its key kind gives it. Every public `Ledger` operation
/// parses the name it is given into one, once, and works with that. It borrows the name, so
/// parsing costs no allocation on the write path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId<'name> {
    name: &'name str,
    livemode: bool,
}

impl<'name> AccountId<'name> {
    /// Accept a name of 1 to 255 printable characters; refuse any other.
    pub fn parse(name: &'name str) -> Result<Self, LedgerError> {
        let length = name.chars().count();
        if length == 0 || length > ACCOUNT_NAME_MAX_CHARS || name.chars().any(char::is_control) {
            return Err(Refusal::InvalidAccount {
                account: name.to_string(),
            }
            .into());
        }
        Ok(AccountId {
            name,
            livemode: account_is_live(name),
        })
    }

    pub fn name(&self) -> &'name str {
        self.name
    }

    /// Whether the account is in live mode.
    pub fn livemode(&self) -> bool {
        self.livemode
    }
}

/// An account id reads as its name wherever a name is wanted (store keys, logs).
impl Deref for AccountId<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.name
    }
}

impl fmt::Display for AccountId<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name)
    }
}

/// Whether an account is in live mode, from the kind of key its name comes from: the server's
/// names for live keys (`acct_live_…`), or a live key used as the name by embedding code
/// (Stripe's `sk_live_…`/`rk_live_…`, Omise's `skey_…` that is not `skey_test_…`). Any other
/// name is a test account, whatever it contains (`shop_live_demo` is in test mode).
pub fn account_is_live(account: &str) -> bool {
    const LIVE_PREFIXES: [&str; 3] = ["acct_live_", "sk_live_", "rk_live_"];
    LIVE_PREFIXES
        .iter()
        .any(|prefix| account.starts_with(prefix))
        || (account.starts_with("skey_") && !account.starts_with("skey_test_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn livemode_follows_the_key_kind_the_account_is_named_after() {
        for live in ["acct_live_0a1b", "sk_live_abc", "rk_live_abc", "skey_5abc"] {
            assert!(AccountId::parse(live).unwrap().livemode(), "{live}");
        }
        for test in [
            "acct_test_0a1b",
            "sk_test_merchant",
            "skey_test_5abc",
            "shop_live_demo",
            "merchant",
        ] {
            assert!(!AccountId::parse(test).unwrap().livemode(), "{test}");
        }
    }

    #[test]
    fn names_are_checked_once_at_parse() {
        for bad in ["", "with\0nul", &"a".repeat(256)] {
            assert!(AccountId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(&*AccountId::parse("merchant").unwrap(), "merchant");
    }
}
