//! Who is asking: bearer tokens, kept only as their SHA-256 hashes and compared in constant
//! time, each the owner of the jobs it makes.
//!
//! Tokens come from a file (`--tokens FILE`) or the environment (`MXPROBE_TOKENS`, comma
//! separated), never from a flag, which other users of the machine can read in `ps`. A line of
//! the file is a token, or `sha256:` and the hash of one in hexadecimal, so that the file need
//! not hold the secret itself; blank lines and `#` comments are skipped. An owner is named by
//! its token's hash: the store never sees a token.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The hash of a token.
type Hash = [u8; 32];

/// How requests are authenticated.
#[derive(Debug)]
pub enum Auth {
    /// `--no-auth`: everyone is one owner. Allowed only on loopback.
    Open,
    /// Bearer tokens, by hash.
    Tokens(Vec<Hash>),
}

/// Whose request it is: the hexadecimal hash of the token, or `anonymous` without auth.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(pub String);

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not one of ours.
    Unknown,
}

impl Auth {
    /// The tokens of `file` and of `env` (the value of `MXPROBE_TOKENS`), or an error that
    /// says which line is wrong. No token at all is an error: serve with `--no-auth` instead.
    pub fn from_sources(file: Option<&Path>, env: Option<&str>) -> Result<Self, String> {
        let mut hashes = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--tokens: cannot read {}: {e}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                hashes.push(
                    entry(line).map_err(|e| {
                        format!("--tokens: line {} of {}: {e}", n + 1, path.display())
                    })?,
                );
            }
        }
        if let Some(env) = env {
            for token in env.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                hashes.push(entry(token).map_err(|e| format!("MXPROBE_TOKENS: {e}"))?);
            }
        }
        if hashes.is_empty() {
            return Err(
                "no API token: give --tokens FILE or MXPROBE_TOKENS (or --no-auth on a \
                        loopback address, for a service only this machine reaches)"
                    .into(),
            );
        }
        Ok(Self::Tokens(hashes))
    }

    /// The owner of a request with this `Authorization` header value.
    pub fn owner(&self, authorization: Option<&[u8]>) -> Result<Owner, Refused> {
        let hashes = match self {
            Self::Open => return Ok(Owner("anonymous".into())),
            Self::Tokens(hashes) => hashes,
        };
        let token = authorization
            .and_then(|value| strip_bearer(value))
            .ok_or(Refused::Missing)?;
        let presented: Hash = Sha256::digest(token).into();
        // Every stored hash is compared, all the way: the time taken says nothing about which
        // token came close.
        let mut found = subtle::Choice::from(0);
        for hash in hashes {
            found |= hash.ct_eq(&presented);
        }
        if bool::from(found) {
            Ok(Owner(hex(&presented)))
        } else {
            Err(Refused::Unknown)
        }
    }
}

/// A line of the tokens file: a token, or `sha256:HEX`.
fn entry(text: &str) -> Result<Hash, String> {
    if let Some(hex_hash) = text.strip_prefix("sha256:") {
        let hex_hash = hex_hash.trim();
        if hex_hash.len() != 64 || !hex_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a sha256: entry needs 64 hexadecimal digits".into());
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex_hash[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("a sha256: entry is not hexadecimal: {e}"))?;
        }
        return Ok(hash);
    }
    if text.len() < 16 {
        return Err("a token needs at least 16 characters: make one with \
                    `head -c 24 /dev/urandom | base64`"
            .into());
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token is printable ASCII without spaces".into());
    }
    Ok(Sha256::digest(text.as_bytes()).into())
}

/// The token of `Bearer TOKEN` (the scheme's case does not matter, RFC 9110 §11.1).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !rest.trim_ascii().is_empty())
        .then(|| rest.trim_ascii())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-token-0123456789";

    fn tokens(env: &str) -> Auth {
        Auth::from_sources(None, Some(env)).unwrap()
    }

    #[test]
    fn a_known_token_is_its_hash_and_others_are_refused() {
        let auth = tokens(&format!("{TOKEN}, another-token-abcdefgh"));
        let owner = auth
            .owner(Some(format!("Bearer {TOKEN}").as_bytes()))
            .unwrap();
        assert_eq!(owner.0, hex(&Sha256::digest(TOKEN.as_bytes())));
        assert_eq!(owner.0.len(), 64);
        let other = auth.owner(Some(b"bearer another-token-abcdefgh")).unwrap();
        assert_ne!(owner, other);
        assert_eq!(auth.owner(None), Err(Refused::Missing));
        assert_eq!(auth.owner(Some(b"Basic abc")), Err(Refused::Missing));
        assert_eq!(auth.owner(Some(b"Bearer ")), Err(Refused::Missing));
        assert_eq!(
            auth.owner(Some(b"Bearer s3cret-token-0123456788")),
            Err(Refused::Unknown)
        );
    }

    #[test]
    fn a_file_may_hold_hashes_instead_of_tokens() {
        let dir = std::env::temp_dir().join(format!("mxprobe-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        let hash = hex(&Sha256::digest(TOKEN.as_bytes()));
        std::fs::write(&path, format!("# the API's tokens\n\nsha256:{hash}\n")).unwrap();
        let auth = Auth::from_sources(Some(&path), None).unwrap();
        assert!(
            auth.owner(Some(format!("Bearer {TOKEN}").as_bytes()))
                .is_ok()
        );
        std::fs::write(&path, "short\n").unwrap();
        let error = Auth::from_sources(Some(&path), None).unwrap_err();
        assert!(
            error.contains("line 1") && error.contains("16 characters"),
            "{error}"
        );
        std::fs::write(&path, "sha256:abc\n").unwrap();
        assert!(Auth::from_sources(Some(&path), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_token_at_all_says_what_to_do() {
        let error = Auth::from_sources(None, Some(" , ")).unwrap_err();
        assert!(error.contains("--no-auth"), "{error}");
        assert_eq!(Auth::Open.owner(None).unwrap(), Owner("anonymous".into()));
    }
}
