//! kubectl-style tables (cli-runtime's tabwriter look) on comfy-table: no borders, UPPERCASE
//! headers, 3 spaces between columns, no trailing spaces, `<none>` for empty cells.

use comfy_table::{Cell as CtCell, Color, Table, presets};

/// What an empty cell prints.
pub const NONE: &str = "<none>";

/// The colour of a cell, used only when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
}

/// One cell: text plus an optional tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }

    /// `<none>` when `text` is empty.
    pub fn or_none(text: impl Into<String>) -> Cell {
        let t = text.into();
        Cell::plain(if t.is_empty() { NONE.to_string() } else { t })
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::plain(s)
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::plain(s)
    }
}

/// Header and rows of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// How to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub no_headers: bool,
    pub color: bool,
}

fn color_of(t: Tone) -> Option<Color> {
    match t {
        Tone::Plain => None,
        Tone::Good => Some(Color::Green),
        Tone::Bad => Some(Color::Red),
        Tone::Warn => Some(Color::Yellow),
    }
}

fn build(grid: &Grid, style: Style) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if style.color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    if !style.no_headers {
        t.set_header(
            grid.headers
                .iter()
                .map(|h| CtCell::new(h.to_uppercase()))
                .collect::<Vec<_>>(),
        );
    }
    for row in &grid.rows {
        t.add_row(
            row.iter()
                .map(|c| {
                    let text = if c.text.is_empty() { NONE } else { &c.text };
                    let cell = CtCell::new(text);
                    match (style.color, color_of(c.tone)) {
                        (true, Some(col)) => cell.fg(col),
                        _ => cell,
                    }
                })
                .collect::<Vec<_>>(),
        );
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, 3));
    }
    t
}

/// The whole table, one line per row, each ending in `\n` (nothing at all for no rows and no
/// header).
pub fn render(grid: &Grid, style: Style) -> String {
    if grid.rows.is_empty() && (style.no_headers || grid.headers.is_empty()) {
        return String::new();
    }
    let mut out = build(grid, style).trim_fmt();
    out.push('\n');
    out
}

/// The last line of `grid` rendered as a whole: used by `--watch` to print one new row aligned
/// with the rows printed before it.
pub fn render_last_row(grid: &Grid, style: Style) -> String {
    let all = render(grid, style);
    let line = all.lines().last().unwrap_or_default();
    format!("{line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(headers: &[&str], rows: &[&[&str]]) -> Grid {
        Grid {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|c| Cell::plain(*c)).collect())
                .collect(),
        }
    }

    #[test]
    fn renders_like_kubectl_get() {
        let g = grid(
            &["Name", "Type", "Cluster-IP", "Age"],
            &[
                &["web", "ClusterIP", "10.96.0.10", "5m"],
                &["smtp-long-name", "NodePort", "", "3h"],
            ],
        );
        let want = "\
NAME             TYPE        CLUSTER-IP   AGE
web              ClusterIP   10.96.0.10   5m
smtp-long-name   NodePort    <none>       3h
";
        assert_eq!(render(&g, Style::default()), want);
    }

    #[test]
    fn no_headers_and_no_trailing_spaces() {
        let g = grid(&["A", "B"], &[&["x", ""], &["yyyy", "z"]]);
        let out = render(
            &g,
            Style {
                no_headers: true,
                color: false,
            },
        );
        assert_eq!(out, "x      <none>\nyyyy   z\n");
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn empty_grid_without_header_prints_nothing() {
        let g = grid(&["A"], &[]);
        assert_eq!(
            render(
                &g,
                Style {
                    no_headers: true,
                    color: false
                }
            ),
            ""
        );
        assert_eq!(render(&g, Style::default()), "A\n");
    }

    #[test]
    fn unicode_cells_align_by_display_width() {
        let g = grid(
            &["Pod", "Web"],
            &[&["a", "✓ 5m"], &["bb", "✗ 503, 4×, 40s"]],
        );
        let want = "\
POD   WEB
a     ✓ 5m
bb    ✗ 503, 4×, 40s
";
        assert_eq!(render(&g, Style::default()), want);
    }

    #[test]
    fn colour_only_when_asked() {
        let mut g = grid(&["State"], &[]);
        g.rows.push(vec![Cell::toned("✗ down", Tone::Bad)]);
        let plain = render(&g, Style::default());
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        let coloured = render(
            &g,
            Style {
                no_headers: false,
                color: true,
            },
        );
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
        assert!(coloured.contains("✗ down"));
    }

    #[test]
    fn last_row_keeps_alignment() {
        let g = grid(&["Name", "Age"], &[&["a-long-name", "1m"], &["b", "2m"]]);
        assert_eq!(render_last_row(&g, Style::default()), "b             2m\n");
    }
}
