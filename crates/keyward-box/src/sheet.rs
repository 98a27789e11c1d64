//! The recovery sheet: what the owner keeps on paper, everything a fresh machine needs except
//! the operator's ticket — the box's name, the key's fingerprints (keyward's, and PBS's for a
//! Proxmox Backup key), the hubs with their pins, the LUKS2 volumes' UUIDs, the date, and the
//! recovery code in large print with each word's position, with a QR code of it. As Borg's
//! `key export --paper` and PBS's `key paperkey` do for theirs. The sheet holds the code: every
//! piece that holds a word of it is written straight into one buffer, large enough never to
//! move, that is wiped when dropped, and the sheet is written like every secret (the CLI's
//! `write_secret`).

use std::fmt::Write as _;

use keyward_core::{Fingerprint, RecoveryCode};
use keyward_service::addresses::HubAddress;
use qrcode::QrCode;
use zeroize::Zeroizing;

use crate::error::{BoxResult, invalid};

/// What a sheet says.
#[derive(Debug)]
pub struct SheetFacts<'a> {
    /// The box's name at its hubs (or the keybox's label).
    pub box_name: &'a str,
    /// keyward's fingerprint of the key.
    pub fingerprint: Fingerprint,
    /// PBS's, for a Proxmox Backup key.
    pub pbs_fingerprint: Option<Fingerprint>,
    /// The hubs, with their pins.
    pub hubs: &'a [HubAddress],
    /// The LUKS2 volumes' UUIDs.
    pub volumes: &'a [String],
    /// The date it was made (`YYYY-MM-DD`).
    pub date: &'a str,
    /// The recovery code.
    pub code: &'a RecoveryCode,
}

/// Room for a whole sheet, so its buffer never moves.
const SHEET_CAPACITY: usize = 64 * 1024;

/// Text that goes into HTML: `<`, `>`, `&` and quotes escaped.
fn html_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The QR code of the code's canonical form (lower-case words, one space), as SVG.
fn qr_svg(code: &RecoveryCode) -> BoxResult<Zeroizing<String>> {
    let canonical = code.canonical();
    let qr = QrCode::new(canonical.as_bytes())
        .map_err(|e| invalid(format!("cannot make the QR code: {e}")))?;
    Ok(Zeroizing::new(qr.render::<qrcode::render::svg::Color>().min_dimensions(220, 220).build()))
}

/// The sheet as one HTML page that prints on one A4 page.
pub fn html(facts: &SheetFacts<'_>) -> BoxResult<Zeroizing<String>> {
    // Room for the page and its QR code (about 15 KiB) so the buffer never moves (a move would
    // leave an unwiped copy of the code behind).
    let mut page = Zeroizing::new(String::with_capacity(SHEET_CAPACITY));
    page.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>keyward recovery sheet</title><style>",
        "@page{size:A4;margin:15mm}body{font-family:sans-serif;font-size:11pt;max-width:180mm;margin:auto}",
        "h1{font-size:16pt;margin:0 0 4mm}table{border-collapse:collapse}td{padding:1mm 3mm 1mm 0;vertical-align:top}",
        ".fp{font-family:monospace;font-size:9pt;word-break:break-all}",
        ".code{display:grid;grid-template-columns:repeat(5,1fr);gap:2mm;margin:4mm 0}",
        ".word{border:1px solid #000;padding:2mm;font-size:16pt;font-family:monospace}",
        ".word small{display:block;font-size:8pt;color:#444}",
        ".qr svg{width:55mm;height:55mm}.warn{font-weight:bold}",
        "</style></head><body>\n"
    ));
    page.push_str(&format!(
        "<h1>keyward recovery sheet: {}</h1>\n<p class=\"warn\">This sheet holds the recovery code: keep it offline, where only you can reach it.</p>\n<table>\n",
        html_text(facts.box_name)
    ));
    let row = |page: &mut String, name: &str, value: &str, class: &str| {
        page.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{}</td></tr>\n",
            html_text(name),
            html_text(value)
        ));
    };
    row(&mut page, "Box", facts.box_name, "");
    row(&mut page, "Made", facts.date, "");
    row(&mut page, "Key fingerprint", &facts.fingerprint.to_string(), "fp");
    if let Some(pbs) = &facts.pbs_fingerprint {
        row(&mut page, "PBS fingerprint", &pbs.to_string(), "fp");
    }
    for hub in facts.hubs {
        row(&mut page, "Hub", &format!("{}  pin {}", hub.url, hub.fingerprint), "fp");
    }
    for uuid in facts.volumes {
        row(&mut page, "LUKS2 volume", uuid, "fp");
    }
    page.push_str("</table>\n<h2>Recovery code</h2>\n<div class=\"code\">\n");
    let canonical = facts.code.canonical();
    for (i, word) in canonical.split(' ').enumerate() {
        // List words are lower-case letters: nothing in them to escape.
        let _ = writeln!(page, "<div class=\"word\"><small>{}</small>{word}</div>", i + 1);
    }
    page.push_str("</div>\n<div class=\"qr\">");
    let svg = qr_svg(facts.code)?;
    // The SVG renderer's XML declaration does not belong inside an HTML page.
    page.push_str(svg.split_once("?>").map_or(svg.as_str(), |(_, rest)| rest));
    page.push_str(concat!(
        "</div>\n<p>On a fresh machine: <code>keyward recover --ticket-file TICKET --expect-fingerprint FINGERPRINT ",
        "--into-keybox keybox.json</code>, with the operator's ticket and this code.</p>\n</body></html>\n"
    ));
    Ok(page)
}

/// The sheet as plain text, the code's QR in text blocks.
pub fn text(facts: &SheetFacts<'_>) -> BoxResult<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(SHEET_CAPACITY));
    out.push_str(&format!("keyward recovery sheet: {}\n", facts.box_name));
    out.push_str("This sheet holds the recovery code: keep it offline.\n\n");
    out.push_str(&format!("Made             {}\n", facts.date));
    out.push_str(&format!("Key fingerprint  {}\n", facts.fingerprint));
    if let Some(pbs) = &facts.pbs_fingerprint {
        out.push_str(&format!("PBS fingerprint  {pbs}\n"));
    }
    for hub in facts.hubs {
        out.push_str(&format!("Hub              {}  pin {}\n", hub.url, hub.fingerprint));
    }
    for uuid in facts.volumes {
        out.push_str(&format!("LUKS2 volume     {uuid}\n"));
    }
    out.push_str("\nRecovery code\n");
    let canonical = facts.code.canonical();
    for (i, word) in canonical.split(' ').enumerate() {
        let _ = writeln!(out, "  {:>2}. {word}", i + 1);
    }
    let qr = QrCode::new(canonical.as_bytes())
        .map_err(|e| invalid(format!("cannot make the QR code: {e}")))?;
    out.push('\n');
    let picture =
        Zeroizing::new(qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
    out.push_str(&picture);
    out.push('\n');
    Ok(out)
}
