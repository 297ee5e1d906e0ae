//! The cache file format: a header, then the payload wasmtime produced.
//!
//! A file is a [`HEADER_LEN`]-byte header then the payload wasmtime produced
//! (`Component::serialize`, the same bytes as `Engine::precompile_component`):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `HBXCWASM` |
//! | 8..12 | format version, u32 little-endian ([`VERSION`]) |
//! | 12..16 | reserved, zero |
//! | 16..48 | SHA-256 of the source `.wasm` |
//! | 48..56 | payload length, u64 little-endian |
//! | 56..88 | SHA-256 of the payload |
//!
//! [`decode`] returns the payload only when the header is intact, names the
//! expected source digest, and the payload's length and SHA-256 match.

use sha2::{Digest, Sha256};

/// First bytes of every cache file.
pub const MAGIC: [u8; 8] = *b"HBXCWASM";
/// The header layout's version; another version is treated as a miss.
pub const VERSION: u32 = 1;
/// Size of the header before the payload.
pub const HEADER_LEN: usize = 88;

/// Why a cache file's bytes are not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("shorter than the header ({0} bytes)")]
    TooShort(usize),
    #[error("not a hookbox cache file (bad magic)")]
    BadMagic,
    #[error("cache format version {0}, this hookbox writes {VERSION}")]
    Version(u32),
    #[error("made from another plugin file (source digest differs)")]
    WrongSource,
    #[error("payload length {found} differs from the header's {expected}")]
    Length { expected: u64, found: u64 },
    #[error("payload checksum mismatch (corrupted or not written by hookbox)")]
    Checksum,
}

/// A whole cache file: header, then `payload`.
pub fn encode(source: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(source);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(payload);
    out
}

/// The payload of a cache file made from the `.wasm` whose SHA-256 is `source`,
/// once the header and checksum hold.
pub fn decode<'a>(file: &'a [u8], source: &[u8; 32]) -> Result<&'a [u8], HeaderError> {
    if file.len() < HEADER_LEN {
        return Err(HeaderError::TooShort(file.len()));
    }
    let (header, payload) = file.split_at(HEADER_LEN);
    if header[0..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
    if version != VERSION || header[12..16] != [0; 4] {
        return Err(HeaderError::Version(version));
    }
    if header[16..48] != source[..] {
        return Err(HeaderError::WrongSource);
    }
    let expected = u64::from_le_bytes(header[48..56].try_into().unwrap_or_default());
    if expected != payload.len() as u64 {
        return Err(HeaderError::Length {
            expected,
            found: payload.len() as u64,
        });
    }
    if Sha256::digest(payload)[..] != header[56..88] {
        return Err(HeaderError::Checksum);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SOURCE: [u8; 32] = [7; 32];

    #[test]
    fn header_round_trips_and_has_the_documented_layout() {
        let payload = b"machine code".to_vec();
        let file = encode(&SOURCE, &payload);
        assert_eq!(file.len(), HEADER_LEN + payload.len());
        assert_eq!(&file[0..8], b"HBXCWASM");
        assert_eq!(&file[8..12], &1u32.to_le_bytes());
        assert_eq!(&file[12..16], &[0; 4]);
        assert_eq!(&file[16..48], &SOURCE);
        assert_eq!(&file[48..56], &(payload.len() as u64).to_le_bytes());
        assert_eq!(&file[56..88], &Sha256::digest(&payload)[..]);
        assert_eq!(decode(&file, &SOURCE).unwrap(), &payload[..]);
        assert_eq!(
            decode(&encode(&SOURCE, &[]), &SOURCE).unwrap(),
            &[] as &[u8]
        );
    }

    #[test]
    fn header_rejects_every_kind_of_damage() {
        let file = encode(&SOURCE, b"machine code");
        assert_eq!(decode(&file[..10], &SOURCE), Err(HeaderError::TooShort(10)));
        let mut f = file.clone();
        f[0] ^= 1;
        assert_eq!(decode(&f, &SOURCE), Err(HeaderError::BadMagic));
        let mut f = file.clone();
        f[8] = 2;
        assert_eq!(decode(&f, &SOURCE), Err(HeaderError::Version(2)));
        assert_eq!(decode(&file, &[8; 32]), Err(HeaderError::WrongSource));
        let mut f = file.clone();
        f.push(0);
        assert!(matches!(
            decode(&f, &SOURCE),
            Err(HeaderError::Length { .. })
        ));
        assert!(matches!(
            decode(&file[..file.len() - 1], &SOURCE),
            Err(HeaderError::Length { .. })
        ));
        let mut f = file.clone();
        *f.last_mut().unwrap() ^= 0x40;
        assert_eq!(decode(&f, &SOURCE), Err(HeaderError::Checksum));
        let mut f = file.clone();
        f[60] ^= 1; // the recorded checksum itself
        assert_eq!(decode(&f, &SOURCE), Err(HeaderError::Checksum));
        assert_eq!(
            decode(&vec![0xAB; 4096], &SOURCE),
            Err(HeaderError::BadMagic)
        );
    }
}
