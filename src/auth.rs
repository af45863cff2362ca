//! Passwords (argon2id, hashed off the event loop) and tokens (JWT, HS256, with an expiry).

use crate::config::AuthConfig;
use crate::error::AppError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    user_id: i64,
    iat: u64,
    exp: u64,
    /// The token's own id (a logout revokes it).
    #[serde(default)]
    jti: u64,
    /// The user's session generation when it was issued ("log out everywhere" bumps it).
    #[serde(default)]
    gen: i64,
}

/// What a valid token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub user_id: i64,
    /// The token's id.
    pub id: u64,
    /// The session generation it belongs to.
    pub generation: i64,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Issues and checks tokens; hashes and checks passwords.
pub struct Auth {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    argon: Argon2<'static>,
    /// A hash of a random password, checked for unknown usernames so that login takes as long
    /// for them as for real ones.
    dummy_hash: String,
    /// argon2 runs on these threads only (one per core): each run holds `argon2_memory_kib`
    /// of memory, and on the shared blocking pool every thread's allocator arena kept its own
    /// copy (a login burst grew the process to 6 GB); an unbounded burst would also starve it.
    hashing: HashPool,
    /// argon2 verifications run (for unknown usernames too; exported in /metrics).
    pub password_checks: std::sync::atomic::AtomicU64,
    /// Tokens already verified, by their exact text (`auth.verified_tokens`; None: 0). Only a
    /// token that passed [`Self::verify`] in full gets in, so a forged one never matches.
    verified: Option<quick_cache::sync::Cache<Box<str>, Token>>,
    pub cfg: AuthConfig,
}

impl Auth {
    pub fn new(secret: &[u8], cfg: AuthConfig) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err("the JWT secret must be at least 16 bytes".into());
        }
        let params = argon2::Params::new(cfg.argon2_memory_kib, cfg.argon2_iterations, 1, None)
            .map_err(|e| format!("argon2 parameters: {e}"))?;
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon
            .hash_password(rand::random::<u64>().to_string().as_bytes(), &salt)
            .map_err(|e| e.to_string())?
            .to_string();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            argon,
            dummy_hash,
            hashing: HashPool::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            )?,
            password_checks: std::sync::atomic::AtomicU64::new(0),
            verified: (cfg.verified_tokens > 0)
                .then(|| quick_cache::sync::Cache::new(cfg.verified_tokens)),
            cfg,
        })
    }

    /// A token for `user_id` in session generation `generation`, valid for `token_ttl_secs`.
    pub fn issue(&self, user_id: i64, generation: i64) -> Result<String, AppError> {
        let now = crate::ids::now_ms() as u64 / 1000;
        self.encode(Claims {
            user_id,
            iat: now,
            exp: now + self.cfg.token_ttl_secs,
            jti: rand::random(),
            gen: generation,
        })
    }

    /// A token of generation 0 with explicit times (tests use it to make expired tokens).
    pub fn issue_with_times(&self, user_id: i64, iat: u64, exp: u64) -> Result<String, AppError> {
        self.encode(Claims {
            user_id,
            iat,
            exp,
            jti: rand::random(),
            gen: 0,
        })
    }

    fn encode(&self, c: Claims) -> Result<String, AppError> {
        encode(&Header::new(Algorithm::HS256), &c, &self.enc)
            .map_err(|e| AppError::Internal(format!("jwt encode: {e}")))
    }

    /// What a validly signed, unexpired token says; [`AppError::InvalidToken`] for anything
    /// else. Whether its session still allows it is the caller's check (`api::views`).
    pub fn verify(&self, token: &str) -> Result<Token, AppError> {
        if token.len() > 4096 {
            return Err(AppError::InvalidToken);
        }
        let Some(held) = &self.verified else {
            return self.verify_in_full(token);
        };
        let now = crate::ids::now_ms().max(0) as u64 / 1000;
        match held.get(token) {
            // unexpired as jsonwebtoken judges it: exp + leeway still ahead
            Some(t) if t.exp.saturating_add(self.validation.leeway) >= now => Ok(t),
            Some(_) => {
                held.remove(token);
                Err(AppError::InvalidToken)
            }
            None => {
                let t = self.verify_in_full(token)?;
                held.insert(token.into(), t);
                Ok(t)
            }
        }
    }

    /// [`Self::verify`] without the held tokens: the signature, the expiry and the times.
    fn verify_in_full(&self, token: &str) -> Result<Token, AppError> {
        let c = decode::<Claims>(token, &self.dec, &self.validation)
            .map_err(|_| AppError::InvalidToken)?
            .claims;
        // A token we issued was issued in the past and lives at most the configured lifetime:
        // a validly signed one that says otherwise (a leaked key, a clock far off) is refused.
        let now = crate::ids::now_ms().max(0) as u64 / 1000;
        let leeway = self.validation.leeway;
        if c.iat > now + leeway || c.exp > c.iat.saturating_add(self.cfg.token_ttl_secs + leeway) {
            return Err(AppError::InvalidToken);
        }
        Ok(Token {
            user_id: c.user_id,
            id: c.jti,
            generation: c.gen,
            exp: c.exp,
        })
    }

    /// argon2id hash of `password`, computed on the hashing threads.
    pub async fn hash_password(
        self: &std::sync::Arc<Self>,
        password: String,
    ) -> Result<String, AppError> {
        let me = self.clone();
        self.hashing
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                me.argon
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| AppError::Internal(format!("argon2: {e}")))
            })
            .await?
    }

    /// Checks `password` against `hash` (or against a dummy when `hash` is None), on the
    /// hashing threads.
    pub async fn verify_password(
        self: &std::sync::Arc<Self>,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, AppError> {
        let me = self.clone();
        self.hashing
            .run(move || {
                let real = hash.is_some();
                let h = hash.unwrap_or_else(|| me.dummy_hash.clone());
                let parsed = PasswordHash::new(&h)
                    .map_err(|e| AppError::Internal(format!("stored hash: {e}")))?;
                // verified in both cases, so that an unknown username costs as much as a
                // wrong password and timing tells nothing about which names exist
                let matches = me
                    .argon
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                me.password_checks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(real && matches)
            })
            .await?
    }
}

/// The JWT secret: `auth.jwt_secret_file`, else `auth.jwt_secret`, else a random secret generated
/// once and kept (mode 0600) in `<data_dir>/jwt.secret`.
pub fn load_secret(cfg: &AuthConfig, data_dir: &Path) -> Result<Vec<u8>, String> {
    if let Some(f) = &cfg.jwt_secret_file {
        let s = std::fs::read_to_string(f)
            .map_err(|e| format!("auth.jwt_secret_file {}: {e}", f.display()))?;
        return Ok(s.trim().as_bytes().to_vec());
    }
    if let Some(s) = &cfg.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    let secret: String = (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect();
    write_private(&path, secret.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

type HashJob = Box<dyn FnOnce() + Send>;

/// A fixed set of threads for password hashing; they exit when the pool is dropped.
struct HashPool {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<HashJob>>,
}

impl HashPool {
    fn new(threads: usize) -> Result<Self, String> {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })
                .map_err(|e| format!("argon2 threads: {e}"))?;
        }
        Ok(Self {
            tx: std::sync::Mutex::new(tx),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Box::new(move || {
                let _ = done.send(f());
            }))
            .map_err(|_| AppError::Internal("argon2 threads stopped".into()))?;
        result
            .await
            .map_err(|_| AppError::Internal("argon2 job lost".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let cfg = AuthConfig {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..Default::default()
        };
        Auth::new(b"0123456789abcdef0123456789abcdef", cfg).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_reject_forgery_and_expiry() {
        let a = auth();
        let t = a.issue(42, 3).unwrap();
        let v = a.verify(&t).unwrap();
        assert_eq!((v.user_id, v.generation), (42, 3));
        assert_ne!(
            a.verify(&a.issue(42, 3).unwrap()).unwrap().id,
            v.id,
            "ids differ"
        );
        let other = Auth::new(b"another-secret-of-32-bytes-long!", AuthConfig::default()).unwrap();
        assert!(matches!(other.verify(&t), Err(AppError::InvalidToken)));
        let expired = a.issue_with_times(42, 1_000, 2_000).unwrap();
        assert!(matches!(a.verify(&expired), Err(AppError::InvalidToken)));
        assert!(a.verify("not.a.token").is_err());
        let now = crate::ids::now_ms() as u64 / 1000;
        let ttl = a.cfg.token_ttl_secs;
        let far_future = a.issue_with_times(42, now, now + ttl * 100).unwrap();
        assert!(matches!(a.verify(&far_future), Err(AppError::InvalidToken)));
        let from_the_future = a
            .issue_with_times(42, now + 3600, now + 3600 + ttl)
            .unwrap();
        assert!(matches!(
            a.verify(&from_the_future),
            Err(AppError::InvalidToken)
        ));
        let at_the_limit = a.issue_with_times(42, now, now + ttl).unwrap();
        assert_eq!(a.verify(&at_the_limit).unwrap().user_id, 42);
        assert!(Auth::new(b"short", AuthConfig::default()).is_err());
    }

    #[test]
    fn held_tokens_still_expire_and_forgeries_never_match_them() {
        let a = auth();
        assert!(a.verified.is_some(), "held by default");
        let t = a.issue(42, 3).unwrap();
        let first = a.verify(&t).unwrap();
        assert_eq!(a.verify(&t).unwrap(), first, "held: the same answer");
        assert_eq!(a.verified.as_ref().unwrap().len(), 1);
        // one character changed in the signature: checked in full, refused, not held
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(matches!(a.verify(&forged), Err(AppError::InvalidToken)));
        assert_eq!(a.verified.as_ref().unwrap().len(), 1);
        // good for this second only (exp + leeway = now): held, then refused once it passes
        let leeway = a.validation.leeway;
        let (now, dying) = (0..3)
            .find_map(|_| {
                // (a second may tick between issuing and checking: then again)
                let now = crate::ids::now_ms() as u64 / 1000;
                let dying = a
                    .issue_with_times(7, now - 2 * leeway, now - leeway)
                    .unwrap();
                a.verify(&dying).is_ok().then_some((now, dying))
            })
            .expect("a token good for this second is accepted");
        while crate::ids::now_ms() as u64 / 1000 == now {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(matches!(a.verify(&dying), Err(AppError::InvalidToken)));
        assert!(matches!(a.verify(&dying), Err(AppError::InvalidToken)));
        // with none held, the same answers
        let plain = Auth {
            verified: None,
            ..auth()
        };
        assert_eq!(plain.verify(&t).unwrap().user_id, 42);
        assert!(plain.verify(&forged).is_err());
    }

    #[test]
    fn login_checks_a_password_even_for_unknown_names() {
        // argon2 runs for an unknown name too: the same work as for a wrong password
        let a = std::sync::Arc::new(auth());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = a.hash_password("secret-pw".into()).await.unwrap();
            assert!(a
                .verify_password("secret-pw".into(), Some(h.clone()))
                .await
                .unwrap());
            assert!(!a.verify_password("wrong".into(), Some(h)).await.unwrap());
            let before = a.password_checks.load(std::sync::atomic::Ordering::Relaxed);
            assert!(!a.verify_password("secret-pw".into(), None).await.unwrap());
            assert_eq!(
                a.password_checks.load(std::sync::atomic::Ordering::Relaxed),
                before + 1,
                "an unknown name skipped the password check"
            );
        });
    }

    #[test]
    fn secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_secret(&AuthConfig::default(), dir.path()).unwrap();
        let b = load_secret(&AuthConfig::default(), dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= 32);
    }
}
