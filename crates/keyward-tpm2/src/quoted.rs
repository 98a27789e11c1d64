//! What a TPM quote says, read from its marshalled TPMS_ATTEST with no TSS (TPM 2.0 Library,
//! Part 2, "TPMS_ATTEST" and "TPMS_QUOTE_INFO"; every integer big-endian): a verifier (a peer)
//! needs only this and the signature check, so it links nothing of the TPM stack for it.
//!
//! ```text
//! magic             u32        TPM_GENERATED, 0xFF544347
//! type              u16        TPM_ST_ATTEST_QUOTE, 0x8018
//! qualifiedSigner   TPM2B_NAME (u16 size, bytes)
//! extraData         TPM2B_DATA (u16 size, bytes)      the verifier's challenge
//! clockInfo         17 bytes   (clock u64, resetCount u32, restartCount u32, safe u8)
//! firmwareVersion   u64
//! pcrSelect         TPML_PCR_SELECTION (u32 count; per entry: hash u16, sizeofSelect u8, bitmap)
//! pcrDigest         TPM2B_DIGEST (u16 size, bytes)
//! ```

use crate::tpm::Bank;

/// TPM_GENERATED: the TPM made this structure.
const TPM_GENERATED: u32 = 0xFF54_4347;
/// TPM_ST_ATTEST_QUOTE.
const ATTEST_QUOTE: u16 = 0x8018;
/// Most PCR selections one quote may carry (one per bank; a TPM has a few banks).
const MAX_SELECTIONS: u32 = 8;
/// Longest PCR bitmap (TPM2_PCR_SELECT_MAX for 32 PCRs).
const MAX_SELECT_BYTES: u8 = 4;

/// A TPM quote's claims: the challenge it was made over, the PCRs it covers, their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    /// extraData: the challenge (qualifying data) the quote was asked with.
    pub challenge: Vec<u8>,
    /// Per selection: the hash algorithm's TPM id (TPM_ALG_ID) and the PCR indices, in order.
    pub selection: Vec<(u16, Vec<u8>)>,
    /// The digest of the selected PCR values.
    pub pcr_digest: Vec<u8>,
}

impl Quoted {
    /// Reads a marshalled TPMS_ATTEST; `None` unless it is, exactly and with nothing after, a
    /// TPM-generated quote.
    pub fn parse(bytes: &[u8]) -> Option<Quoted> {
        let mut r = Reader(bytes);
        if r.u32()? != TPM_GENERATED || r.u16()? != ATTEST_QUOTE {
            return None;
        }
        r.sized()?; // qualifiedSigner
        let challenge = r.sized()?.to_vec();
        r.take(17 + 8)?; // clockInfo, firmwareVersion
        let count = r.u32()?;
        if count > MAX_SELECTIONS {
            return None;
        }
        let mut selection = Vec::new();
        for _ in 0..count {
            let algorithm = r.u16()?;
            let size = r.u8()?;
            if size > MAX_SELECT_BYTES {
                return None;
            }
            let bitmap = r.take(usize::from(size))?;
            let pcrs = (0u8..size * 8)
                .filter(|&pcr| bitmap[usize::from(pcr / 8)] & (1 << (pcr % 8)) != 0)
                .collect();
            selection.push((algorithm, pcrs));
        }
        let pcr_digest = r.sized()?.to_vec();
        r.0.is_empty().then_some(Quoted { challenge, selection, pcr_digest })
    }

    /// Whether it covers exactly the PCRs `pcrs` (sorted, without repeats) of `bank`.
    pub fn covers_exactly(&self, bank: Bank, pcrs: &[u8]) -> bool {
        matches!(self.selection.as_slice(), [(algorithm, quoted)] if *algorithm == bank.tpm_alg_id() && quoted == pcrs)
    }
}

/// Big-endian fields off the front of a byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A TPM2B: a u16 size, then that many bytes.
    fn sized(&mut self) -> Option<&'a [u8]> {
        let size = self.u16()?;
        self.take(usize::from(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote of PCRs `pcrs` of SHA-256 over `challenge`, as a TPM marshals one.
    fn quote_bytes(challenge: &[u8], bitmap: &[u8], digest: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(TPM_GENERATED.to_be_bytes());
        out.extend(ATTEST_QUOTE.to_be_bytes());
        out.extend(4u16.to_be_bytes());
        out.extend([0, 0x0b, 1, 2]);
        out.extend(u16::try_from(challenge.len()).expect("short").to_be_bytes());
        out.extend(challenge);
        out.extend([0u8; 25]);
        out.extend(1u32.to_be_bytes());
        out.extend(0x000bu16.to_be_bytes());
        out.push(u8::try_from(bitmap.len()).expect("short"));
        out.extend(bitmap);
        out.extend(u16::try_from(digest.len()).expect("short").to_be_bytes());
        out.extend(digest);
        out
    }

    #[test]
    fn a_quote_reads_to_its_challenge_pcrs_and_digest_and_nothing_else_does() {
        let bytes = quote_bytes(b"challenge", &[0x80, 0x08, 0x00], &[7; 32]);
        let quoted = Quoted::parse(&bytes).expect("a quote");
        assert_eq!(quoted.challenge, b"challenge");
        assert_eq!(quoted.selection, [(0x000b, vec![7, 11])]);
        assert_eq!(quoted.pcr_digest, [7; 32]);
        assert!(quoted.covers_exactly(Bank::Sha256, &[7, 11]));
        assert!(!quoted.covers_exactly(Bank::Sha256, &[7]));
        assert!(!quoted.covers_exactly(Bank::Sha1, &[7, 11]));
        // Cut anywhere, one byte more, another magic or type: not a quote.
        for end in 0..bytes.len() {
            assert_eq!(Quoted::parse(&bytes[..end]), None, "cut at {end}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Quoted::parse(&longer), None);
        for at in [0, 4] {
            let mut other = bytes.clone();
            other[at] ^= 1;
            assert_eq!(Quoted::parse(&other), None, "byte {at}");
        }
    }
}
