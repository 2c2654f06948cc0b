//! Text limits shared by the renderers whose consumers cap field lengths (Security Hub, chat).

/// At most `max` characters (not bytes: both services count characters), cut with `...`.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}
