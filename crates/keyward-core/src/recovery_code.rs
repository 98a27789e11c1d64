//! Recovery codes: ten words drawn uniformly from the EFF large wordlist, about 129 bits. Read
//! back leniently (any case, any spacing, hyphens between words), written in one canonical form:
//! lower case, words separated by one space. That canonical form is the KDF input.
//!
//! The four list words that contain a hyphen ("drop-down", "felt-tip", "t-shirt", "yo-yo") are
//! never drawn: a hyphen between words is accepted as a separator, and keeping them out makes
//! every code read back one way only. 7772 words remain: 10 × log2(7772) ≈ 129.18 bits.

use std::fmt;
use std::sync::OnceLock;

use zeroize::{Zeroize, Zeroizing};

use crate::random;

/// Number of words in a code.
pub const WORDS: usize = 10;

/// The EFF large wordlist (CC BY 3.0 US, Electronic Frontier Foundation, 2016).
const EFF_LARGE_WORDLIST: &str = include_str!("../data/eff_large_wordlist.txt");

/// The words a code is drawn from: the EFF list without its hyphenated words, sorted.
fn words() -> &'static [&'static str] {
    static WORDS_LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    WORDS_LIST.get_or_init(|| {
        EFF_LARGE_WORDLIST
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty() && !w.contains('-'))
            .collect()
    })
}

/// How many words a code is drawn from.
pub fn dictionary_size() -> usize {
    words().len()
}

/// Why a typed code could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The code has too few or too many words.
    #[error("it has {found} words, a recovery code has {WORDS}")]
    WordCount {
        /// How many words were found.
        found: usize,
    },
    /// A word is not on the list. The typed word is not repeated (it is part of a secret); the
    /// nearest list words are, to help fix a typo.
    #[error("word {position} is not on the word list{}", suggestion_text(.nearest))]
    UnknownWord {
        /// 1-based position of the word.
        position: usize,
        /// The closest valid words.
        nearest: Vec<String>,
    },
}

impl CodeError {
    /// The same error without neighbour words. Used when the code did not come from a person at
    /// a terminal: a file given as a code (say, a passphrase file by mistake) must not have words
    /// near its content printed on stderr, where logs may keep them.
    pub fn without_hints(self) -> Self {
        match self {
            CodeError::UnknownWord { position, .. } => {
                CodeError::UnknownWord { position, nearest: Vec::new() }
            }
            other => other,
        }
    }
}

fn suggestion_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", nearest.join(", "))
    }
}

/// A recovery code: ten indices into the word list. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[zeroize(drop)]
pub struct RecoveryCode([u16; WORDS]);

impl RecoveryCode {
    /// A fresh, uniformly random code.
    pub fn generate() -> crate::Result<Self> {
        let n = u32::try_from(dictionary_size()).unwrap_or(u32::MAX);
        let mut indices = [0u16; WORDS];
        for slot in &mut indices {
            *slot = u16::try_from(random::below(n)?).unwrap_or(0);
        }
        Ok(RecoveryCode(indices))
    }

    /// Reads a typed code: case-insensitive, words separated by any whitespace or hyphens.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let lowered = Zeroizing::new(text.to_lowercase());
        let tokens: Vec<&str> = lowered
            .split(|c: char| c.is_whitespace() || c == '-')
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.len() != WORDS {
            return Err(CodeError::WordCount { found: tokens.len() });
        }
        let list = words();
        let mut indices = [0u16; WORDS];
        for (i, token) in tokens.iter().enumerate() {
            match list.binary_search(token) {
                Ok(index) => indices[i] = u16::try_from(index).unwrap_or(0),
                Err(_) => {
                    indices.zeroize();
                    return Err(CodeError::UnknownWord {
                        position: i + 1,
                        nearest: nearest_words(token),
                    });
                }
            }
        }
        Ok(RecoveryCode(indices))
    }

    /// The canonical form: lower-case words separated by one space. This is the KDF input and
    /// what a person types at a prompt.
    pub fn canonical(&self) -> Zeroizing<String> {
        let list = words();
        let mut out = Zeroizing::new(String::with_capacity(WORDS * 10));
        for (i, index) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(list.get(usize::from(*index)).copied().unwrap_or(""));
        }
        out
    }

    /// The form to show a person: two lines of five words, so it can be read aloud and copied.
    pub fn display_form(&self) -> Zeroizing<String> {
        // Built in one zeroized buffer: no intermediate copy of the words is left behind.
        let canonical = self.canonical();
        let mut out = Zeroizing::new(String::with_capacity(canonical.len()));
        for (i, word) in canonical.split(' ').enumerate() {
            if i > 0 {
                out.push(if i == WORDS / 2 { '\n' } else { ' ' });
            }
            out.push_str(word);
        }
        out
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// Longest word worth suggesting neighbours for; list words have at most 9 letters, and edit
/// distance over long junk would only cost time.
const MAX_SUGGESTABLE_LEN: usize = 16;

/// The three list words closest to `typed` by edit distance (ties broken alphabetically).
fn nearest_words(typed: &str) -> Vec<String> {
    if typed.chars().count() > MAX_SUGGESTABLE_LEN {
        return Vec::new();
    }
    let mut scored: Vec<(usize, &str)> =
        words().iter().map(|w| (edit_distance(typed, w), *w)).collect();
    scored.sort();
    scored.into_iter().filter(|(d, _)| *d <= 3).take(3).map(|(_, w)| w.to_string()).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_list_is_the_eff_large_list_without_hyphenated_words() {
        assert_eq!(EFF_LARGE_WORDLIST.lines().count(), 7776);
        assert_eq!(dictionary_size(), 7772);
        assert!(words().windows(2).all(|w| w[0] < w[1]), "binary search needs a sorted list");
        let bits = WORDS as f64 * (dictionary_size() as f64).log2();
        assert!(bits > 129.0, "a code carries {bits} bits");
    }

    #[test]
    fn lenient_reading() {
        let code = RecoveryCode::generate().expect("rng");
        let canonical = code.canonical();
        let shouted = canonical.to_uppercase().replace(' ', " -\t ");
        assert_eq!(RecoveryCode::parse(&shouted).expect("parse"), code);
        assert_eq!(RecoveryCode::parse(&code.display_form()).expect("parse"), code);
    }

    #[test]
    fn unknown_word_is_named_by_position_with_neighbours() {
        let err = RecoveryCode::parse(
            "abacus abdomen abdominal abide abiding abilitx able abnormal aboard abolish",
        )
        .expect_err("typo must fail");
        match &err {
            CodeError::UnknownWord { position, nearest } => {
                assert_eq!(*position, 6);
                assert_eq!(nearest.first().map(String::as_str), Some("ability"));
            }
            other => panic!("expected UnknownWord, got {other:?}"),
        }
        assert!(!err.to_string().contains("abilitx"), "the typed word is part of a secret");
        assert_eq!(RecoveryCode::parse("abacus abacus"), Err(CodeError::WordCount { found: 2 }));
    }

    proptest! {
        #[test]
        fn parse_and_format_round_trip(indices in proptest::array::uniform10(0u16..7772)) {
            let code = RecoveryCode(indices);
            prop_assert_eq!(RecoveryCode::parse(&code.canonical()).expect("canonical parses"), code.clone());
            prop_assert_eq!(RecoveryCode::parse(&code.display_form()).expect("display parses"), code);
        }
    }
}
