//! Cells of the CSV files a lab opens in a spreadsheet. A text cell that begins with `=`,
//! `+`, `-`, `@`, a tab or a carriage return is taken for a formula by Excel, LibreOffice and
//! Google Sheets (CSV or formula injection), so the export writes such cells behind an
//! apostrophe, the spreadsheets' own mark for "this is text"; the label upload removes that
//! apostrophe again, so an exported file can be filled in and sent back as it is.

use std::borrow::Cow;

/// Whether a spreadsheet would read a cell beginning with `c` as a formula.
fn starts_a_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// The text `cell` as the export writes it: behind an apostrophe when a spreadsheet would
/// take it for a formula.
pub fn escape(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if starts_a_formula(c) => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The text of a cell the export escaped: without the apostrophe [`escape`] put in front.
pub fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.chars().next().is_some_and(starts_a_formula) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_triggers_are_escaped_and_come_back_unchanged() {
        for cell in ["=HYPERLINK(\"x\")", "+1", "-Me", "@SUM(A1)", "\tA", "\rA"] {
            let escaped = escape(cell);
            assert!(escaped.starts_with('\''), "{cell:?} -> {escaped:?}");
            assert_eq!(unescape(&escaped), cell);
        }
        for cell in ["ACGT", "", "'quoted", "[1,2]", "Me-Ph"] {
            assert_eq!(escape(cell), cell, "{cell:?} needs no escape");
            assert_eq!(unescape(cell), cell, "{cell:?} was never escaped");
        }
    }
}
