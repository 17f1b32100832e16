//! A minimal aligned-column table for terminals (no colour: output must read the same piped).

/// Column alignment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of strings with a header row.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[(&str, Align)]) -> Table {
        Table {
            header: header.iter().map(|(h, a)| ((*h).to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row. Cells are escaped here (`stowage_model::escape`): names come from the
    /// storage, and a control character in a table reaches the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(escaped).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Render with two spaces between columns; the last column is not padded.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| h.chars().count()).collect();
        for r in &self.rows {
            measure(&mut widths, r);
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|(h, _)| h.clone()).collect();
        line(&mut out, &self.header, &widths, &header);
        for r in &self.rows {
            line(&mut out, &self.header, &widths, r);
        }
        out
    }
}

fn escaped(c: String) -> String {
    match stowage_model::escape::escape(&c) {
        std::borrow::Cow::Borrowed(_) => c,
        std::borrow::Cow::Owned(e) => e,
    }
}

fn measure(widths: &mut [usize], cells: &[String]) {
    for (w, c) in widths.iter_mut().zip(cells) {
        *w = (*w).max(c.chars().count());
    }
}

/// One line: two spaces between columns, the last column not padded.
fn line(out: &mut String, header: &[(String, Align)], widths: &[usize], cells: &[String]) {
    let n = header.len();
    let mut l = String::new();
    for (i, c) in cells.iter().enumerate().take(n) {
        let pad = widths[i].saturating_sub(c.chars().count());
        let last = i + 1 == n;
        match header[i].1 {
            Align::Right => {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
            Align::Left => {
                l.push_str(c);
                if !last {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        if !last {
            l.push_str("  ");
        }
    }
    out.push_str(l.trim_end());
    out.push('\n');
}

/// The lines [`Table::render`] makes of the same header and rows, written to `out`, with
/// no row kept: `rows` is called twice, once to measure the columns and once to write. A
/// plan's table of millions of rows takes the memory of one row (the cost is making each
/// row twice).
pub fn stream<I: Iterator<Item = Vec<String>>>(
    header: &[(&str, Align)],
    rows: impl Fn() -> I,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let header: Vec<(String, Align)> = header.iter().map(|(h, a)| ((*h).to_string(), *a)).collect();
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for r in rows() {
        let r: Vec<String> = r.into_iter().map(escaped).collect();
        measure(&mut widths, &r);
    }
    let mut buf = String::new();
    let names: Vec<String> = header.iter().map(|(h, _)| h.clone()).collect();
    line(&mut buf, &header, &widths, &names);
    for r in rows() {
        let r: Vec<String> = r.into_iter().map(escaped).collect();
        line(&mut buf, &header, &widths, &r);
        if buf.len() >= 1 << 16 {
            out.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    out.write_all(buf.as_bytes())
}

/// Show the first `n` items of a list and how many more there are.
pub fn abbreviate(items: &[String], n: usize) -> String {
    if items.is_empty() {
        return "-".to_string();
    }
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(" +{}", items.len() - n));
    }
    s
}

/// [`abbreviate`] when only the first items are at hand: `first` shown, `total` in all.
pub fn abbreviate_first(first: &[String], total: usize) -> String {
    if total == 0 {
        return "-".to_string();
    }
    let mut s = first.join(", ");
    if total > first.len() {
        s.push_str(&format!(" +{}", total - first.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("SIZE", Align::Right),
            ("NOTE", Align::Left),
        ]);
        t.row(vec!["a".into(), "10 B".into(), "x".into()]);
        t.row(vec!["long-name".into(), "1.5 KiB".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME          SIZE  NOTE\na             10 B  x\nlong-name  1.5 KiB\n"
        );
        assert_eq!(
            abbreviate(&["a".into(), "b".into(), "c".into()], 2),
            "a, b +1"
        );
    }

    /// A streamed table is the rendered one, byte for byte: widths from every row (also
    /// wider than the header, also after escaping a control character), both alignments,
    /// the last column unpadded, more rows than one write's buffer.
    #[test]
    fn streamed_is_rendered() {
        let header = [
            ("BLOB", Align::Left),
            ("SIZE", Align::Right),
            ("WHY", Align::Left),
        ];
        let rows = || {
            (0..3000).map(|i: u32| {
                vec![
                    format!("sha256:{i:x}"),
                    format!("{} B", u64::from(i) * 7919 % 100_003),
                    if i == 17 {
                        "bad\u{1b}[31m".to_owned()
                    } else {
                        "unreferenced".to_owned()
                    },
                ]
            })
        };
        let mut t = Table::new(&header);
        for r in rows() {
            t.row(r);
        }
        let mut out = Vec::new();
        stream(&header, rows, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), t.render());
        assert!(!t.render().contains('\u{1b}'));
    }
}
