//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes), stored as PHC
//! strings. Hashing runs on the blocking pool: it takes tens of milliseconds by design.

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    password_hash::{SaltString, rand_core::OsRng},
};
use thinkbank_common::ErrorCode;

use crate::error::ApiError;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;

/// Rejects passwords too short to resist guessing (or too long to hash cheaply).
pub fn validate(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH || password.len() > MAX_LENGTH {
        return Err(ApiError::invalid(format!(
            "password must be {MIN_LENGTH} to {MAX_LENGTH} characters long"
        )));
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("hashing task failed: {e}")))?
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot hash password: {e}")))
}

/// Whether `password` matches the stored PHC string (false for a malformed hash too).
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), stored.clone()).await);
        assert!(!verify("wrong horse battery".into(), stored).await);
        assert!(validate("short").is_err());
    }
}
