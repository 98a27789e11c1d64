//! Text that people read but others wrote (a server's message, a box's drill report): what may
//! not be in it, and how it is shown when it is there anyway.

/// A control character, or a Unicode format character that changes how text around it reads:
/// bidirectional marks, embeddings, overrides and isolates, zero-width characters, the BOM.
/// Text with one could drive a terminal, forge a line of output, or reorder what is shown.
pub fn shown_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Text a server sent, with every character [`shown_escaped`] names (newlines too) written as an
/// escape: a hostile or broken server's message can neither drive a terminal, forge a line of
/// output, nor reorder what is shown (bidi overrides).
pub fn from_server(text: &str) -> String {
    text.chars()
        .map(|c| if shown_escaped(c) { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}
