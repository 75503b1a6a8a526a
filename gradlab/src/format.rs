//! How the lab writes numbers and text: significant digits, standard errors, markdown cells.
//! Shared by the report, the claims' evidence and the charts' axis labels.

/// Text made safe for a markdown table cell: a `|` would end the cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// An integer with thousands separators: `1,000,000`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with about four significant digits, in scientific notation when very large or small.
pub(crate) fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    // Trailing zeros after the point carry no information here.
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A standard error with two significant digits.
pub(crate) fn se(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return num(x);
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        return format!("{x:.1e}");
    }
    let decimals = (1 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A number with an explicit sign.
pub(crate) fn signed(x: f64) -> String {
    if x > 0.0 { format!("+{}", num(x)) } else { num(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(2.0), "2");
        assert_eq!(num(30.1234), "30.12");
        assert_eq!(num(-0.17603), "-0.176");
        assert_eq!(num(123456.0), "1.235e5");
        assert_eq!(num(0.00012346), "1.235e-4");
        assert_eq!(se(0.0054321), "0.0054");
        assert_eq!(se(12.3), "12");
        assert_eq!(signed(0.5), "+0.5");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(cell("|bias| > 3"), "\\|bias\\| > 3");
    }
}
