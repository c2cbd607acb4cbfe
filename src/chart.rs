//! Line charts of `lab compare` results: SVG drawn by plotters, PNG
//! rasterised from that same SVG, so the two files always agree.

use anyhow::Context as _;
use plotters::prelude::*;

/// One model's line: (connections, value) points.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, a y-axis name and its lines.
#[derive(Debug)]
pub struct Panel<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub lines: &'a [Line],
    /// Where the legend covers the fewest points.
    pub legend: SeriesLabelPosition,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 520;

/// Distinct on white and for the common colour-blindnesses (Okabe-Ito,
/// then darker shades of the same hues for models past the eighth).
const COLOURS: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(120, 60, 0),
    RGBColor(90, 90, 160),
];

/// Both panels side by side, both axes logarithmic: the loads span three
/// orders of magnitude, and so do the rates and latencies.
pub fn svg(panels: &[Panel<'_>]) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            draw_panel(panel, area)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel<'_>,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let positive = || {
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
    };
    let x_max = positive().map(|p| p.0).fold(1.0_f64, f64::max) * 1.5;
    let y_min = positive().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = positive().map(|p| p.1).fold(0.0_f64, f64::max);
    let (y_min, y_max) = if y_max > 0.0 {
        (y_min / 2.0, y_max * 2.0)
    } else {
        (1.0, 10.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8_f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("connections at once")
        .y_desc(panel.y_label)
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE)
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(drawing)?;
    for (i, line) in panel.lines.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or(BLACK);
        let points: Vec<(f64, f64)> = line.points.iter().copied().filter(|p| p.0 > 0.0 && p.1 > 0.0).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(drawing)?
            .label(line.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(drawing)?;
    }
    chart
        .configure_series_labels()
        .position(panel.legend.clone())
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(drawing)?;
    Ok(())
}

/// `1.2k`, `35k`, `1.5M`: tick labels that fit the axis.
fn short_number(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        v if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        v => trim(v),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// The SVG rasterised, with the font built in: a PNG must not depend on
/// which fonts the machine happens to have.
pub fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    let mut options = resvg::usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_font_data(dejavu::sans::regular().to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_str(svg, &options).context("reading the chart's SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).context("an empty chart")?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding the chart as PNG")
}

fn drawing<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}
