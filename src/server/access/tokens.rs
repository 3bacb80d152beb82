//! Access tokens: what they may do, how they are made, and the server's view of them. A token is 256
//! random bits, printed once; the database keeps its SHA-256 (migration 0005). The server keeps the
//! stored tokens in memory, reloaded at most every second (so `token create` and `token revoke` on a
//! running server take effect within a second), and compares a presented token's hash with each in
//! constant time.

use crate::server::error::ApiError;
use crate::server::store::{Store, TokenRecord};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How stale the server's copy of the tokens may be.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// A token not in the copy reloads it sooner, but not more often than this: a flood of bad tokens
/// costs at most this many queries a second.
const RELOAD_ON_MISS_EVERY: Duration = Duration::from_millis(100);
/// What a token starts with, so that one is recognisable in a config file or a leak scanner.
const PREFIX: &str = "sb_";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// The history API, the dashboard and the live feed.
    Read,
    /// The write endpoints only.
    Write,
    /// Both.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// Whether a token of this scope may do what `needed` asks.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

/// A new token: the secret to print once, and the record to store.
pub struct NewToken {
    pub secret: String,
    pub record: TokenRecord,
}

impl NewToken {
    pub fn generate(name: &str, scope: Scope, now_ms: i64) -> Result<NewToken, String> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(format!(
                "token name {name:?}: 1 to 64 letters, digits, dots, dashes or underscores"
            ));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret = format!("{PREFIX}{hex}");
        let record = TokenRecord {
            name: name.to_owned(),
            scope: scope.name().to_owned(),
            sha256: digest(&secret),
            created_ms: now_ms,
        };
        Ok(NewToken { secret, record })
    }
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A presented token that matched a stored one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub scope: Scope,
}

/// The server's copy of the stored tokens, and each token's write rate.
pub struct Tokens {
    store: Store,
    known: RwLock<Arc<Vec<TokenRecord>>>,
    loaded: Mutex<Instant>,
    rate: WriteRate,
}

impl Tokens {
    pub async fn load(store: Store, writes_per_sec: u32) -> Result<Tokens, ApiError> {
        let known = store.tokens().await?;
        Ok(Tokens {
            store,
            known: RwLock::new(Arc::new(known)),
            loaded: Mutex::new(Instant::now()),
            rate: WriteRate::new(writes_per_sec),
        })
    }

    /// Whether any token exists: without one, everything is open (loopback's zero set-up).
    pub async fn required(&self) -> Result<bool, ApiError> {
        Ok(!self.current(RELOAD_EVERY).await?.is_empty())
    }

    /// The holder of `secret`, if it is a stored token's.
    pub async fn check(&self, secret: &str) -> Result<Option<Holder>, ApiError> {
        let presented = digest(secret);
        let found = find(&self.current(RELOAD_EVERY).await?, &presented);
        match found {
            Some(holder) => Ok(Some(holder)),
            None => Ok(find(&self.current(RELOAD_ON_MISS_EVERY).await?, &presented)),
        }
    }

    /// Takes one write from `holder`'s allowance: `Err` with the seconds to wait past it.
    pub fn take_write(&self, holder: &Holder) -> Result<(), u64> {
        self.rate.take(&holder.name)
    }

    /// The stored tokens, reloaded first when the copy is older than `max_age`.
    async fn current(&self, max_age: Duration) -> Result<Arc<Vec<TokenRecord>>, ApiError> {
        let stale = {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            let stale = loaded.elapsed() >= max_age;
            if stale {
                *loaded = Instant::now();
            }
            stale
        };
        if stale {
            let fresh = Arc::new(self.store.tokens().await?);
            *self.known.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
        Ok(self.known.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The stored token whose hash is `presented`, comparing with every one in constant time, so the
/// time taken says nothing of how close a guess came.
fn find(known: &[TokenRecord], presented: &[u8]) -> Option<Holder> {
    let mut found = None;
    for token in known {
        if bool::from(token.sha256.ct_eq(presented)) {
            found = Scope::parse(&token.scope).map(|scope| Holder {
                name: token.name.clone(),
                scope,
            });
        }
    }
    found
}

/// Writes per second each token may make, a second's worth in a burst (a token bucket each).
struct WriteRate {
    per_sec: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    allowance: f64,
    at: Instant,
}

impl WriteRate {
    fn new(per_sec: u32) -> WriteRate {
        WriteRate {
            per_sec: f64::from(per_sec.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, name: &str) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let bucket = buckets.entry(name.to_owned()).or_insert(Bucket {
            allowance: self.per_sec,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.allowance = (bucket.allowance + refill).min(self.per_sec);
        bucket.at = now;
        if bucket.allowance >= 1.0 {
            bucket.allowance -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.allowance) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_random_prefixed_and_stored_only_as_its_hash() {
        let a = NewToken::generate("telegraf", Scope::Write, 5).unwrap();
        let b = NewToken::generate("telegraf", Scope::Write, 5).unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(PREFIX) && a.secret.len() == PREFIX.len() + 64);
        assert_eq!(a.record.sha256, digest(&a.secret));
        assert!(!format!("{:?}", a.record).contains(&a.secret[PREFIX.len()..]));
        assert_eq!(a.record.scope, "write");
        for bad in ["", "a b", "ünicode", &"x".repeat(65)] {
            assert!(NewToken::generate(bad, Scope::Read, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_allow_what_they_name_and_admin_both() {
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
        assert!(!Scope::Write.allows(Scope::Read));
        assert!(Scope::Admin.allows(Scope::Read) && Scope::Admin.allows(Scope::Write));
    }

    #[test]
    fn only_a_stored_hash_finds_its_holder() {
        let token = NewToken::generate("ci", Scope::Read, 0).unwrap();
        let known = vec![token.record.clone()];
        assert_eq!(
            find(&known, &digest(&token.secret)),
            Some(Holder {
                name: "ci".into(),
                scope: Scope::Read
            })
        );
        assert_eq!(find(&known, &digest("sb_guess")), None);
    }

    #[test]
    fn each_token_writes_at_its_rate_and_hears_when_to_come_back() {
        let rate = WriteRate::new(3);
        for _ in 0..3 {
            assert_eq!(rate.take("a"), Ok(()));
        }
        assert_eq!(rate.take("a"), Err(1));
        assert_eq!(
            rate.take("b"),
            Ok(()),
            "another token has its own allowance"
        );
    }
}
