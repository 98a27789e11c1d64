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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_text_cannot_forge_a_line_or_drive_a_terminal() {
        assert_eq!(
            from_server("ok\nkeyward: all fine\x1b[2J"),
            "ok\\u{a}keyward: all fine\\u{1b}[2J"
        );
        assert_eq!(from_server("abc\u{202E}fed"), "abc\\u{202e}fed", "a bidi override is shown");
        assert_eq!(from_server("plain text, é"), "plain text, é");
    }
}
