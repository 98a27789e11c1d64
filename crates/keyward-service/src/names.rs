//! The one rule for names a box is known by: at a hub, as an owner at its peers, in operator
//! statements and on the command line.

/// Longest box name.
pub const MAX_BOX_NAME: usize = 64;

/// Whether `name` can name a box: 1–64 ASCII letters, digits, `-`, `_` or `.`.
pub fn valid_box_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_BOX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What [`valid_box_name`] accepts, in words, for error messages.
pub const BOX_NAME_RULE: &str = "1–64 letters, digits, `-`, `_` or `.`";
