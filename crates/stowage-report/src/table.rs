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
        let cells = cells
            .into_iter()
            .map(|c| match stowage_model::escape::escape(&c) {
                std::borrow::Cow::Borrowed(_) => c,
                std::borrow::Cow::Owned(e) => e,
            })
            .collect();
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Render with two spaces between columns; the last column is not padded.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                let w = widths[i];
                let pad = w.saturating_sub(c.chars().count());
                let last = i + 1 == n;
                match self.header[i].1 {
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
        };
        line(
            &self
                .header
                .iter()
                .map(|(h, _)| h.clone())
                .collect::<Vec<_>>(),
        );
        for r in &self.rows {
            line(r);
        }
        out
    }
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
}
