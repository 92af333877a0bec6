//! SVG charts of the report, drawn with plotters' SVG backend.
//!
//! Every chart is a horizontal bar chart on a logarithmic axis: the columns differ by orders
//! of magnitude (microseconds to milliseconds, KiB to MiB), which a linear axis would flatten
//! into one visible bar. Labels are SVG `<text>` elements (no font files are read: plotters is
//! built without its font features), so the charts render the same everywhere.

use std::path::Path;

use plotters::prelude::*;

use super::measured::Measured;
use super::stats::{bytes, ms, number, Summary};
use super::table::startup_series;
use super::Results;

/// One bar: its label, and its value with an optional p10–p90 whisker, or why there is none.
pub struct Bar {
    pub label: String,
    pub value: Result<(f64, Option<(f64, f64)>), String>,
    pub text: String,
}

/// Draws `bars` into `path`.
pub fn draw(path: &Path, title: &str, unit: &str, bars: &[Bar]) -> anyhow::Result<()> {
    let values: Vec<f64> = bars
        .iter()
        .filter_map(|b| b.value.as_ref().ok())
        .flat_map(|(v, spread)| {
            let (lo, hi) = spread.unwrap_or((*v, *v));
            [*v, lo, hi]
        })
        .filter(|v| *v > 0.0)
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        // Room on the right for the value's text.
        (
            10f64.powf((min.log10() - 0.3).floor()),
            10f64.powf((max.log10() + 2.2).ceil()),
        )
    };
    let height = 90 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(230)
        .build_cartesian_2d((lo..hi).log_scale(), -0.5..n - 0.5)?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.05 && i >= 0.0 && (i as usize) < labels.len() {
                // Top to bottom in the order given.
                labels[labels.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc(unit)
        .x_label_formatter(&|x| number(*x))
        .draw()?;
    let palette = [
        RGBColor(70, 130, 180),
        RGBColor(220, 120, 50),
        RGBColor(90, 160, 90),
    ];
    for (k, bar) in bars.iter().enumerate() {
        let y = n - 1.0 - k as f64;
        match &bar.value {
            Ok((v, spread)) => {
                let color = palette[k / 2 % palette.len()];
                chart.draw_series([Rectangle::new(
                    [(lo, y - 0.32), (v.max(lo), y + 0.32)],
                    color.mix(0.85).filled(),
                )])?;
                if let Some((p10, p90)) = spread {
                    chart.draw_series([PathElement::new(
                        vec![(p10.max(lo), y), (p90.max(lo), y)],
                        BLACK.stroke_width(2),
                    )])?;
                }
                let right = spread.map_or(*v, |(_, p90)| p90).max(*v);
                chart.draw_series([Text::new(
                    format!(" {}", bar.text),
                    (right * 1.05, y + 0.15),
                    ("sans-serif", 13),
                )])?;
            }
            Err(why) => {
                chart.draw_series([Text::new(
                    format!("not measurable here: {}", shorten(why, 90)),
                    (lo * 1.1, y + 0.15),
                    ("sans-serif", 13).into_font().color(&RGBColor(150, 40, 40)),
                )])?;
            }
        }
    }
    root.present()?;
    Ok(())
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn timing(label: &str, m: &Measured<Summary>) -> Bar {
    Bar {
        label: label.to_string(),
        value: m
            .as_ref()
            .map(|s| (s.median, Some((s.p10, s.p90))))
            .map_err(Clone::clone),
        text: m.as_ref().map(|s| ms(s.median)).unwrap_or_default(),
    }
}

fn size<T>(label: &str, m: &Measured<T>, bytes_of: impl Fn(&T) -> u64) -> Bar {
    let m = m.as_ref().map(bytes_of);
    Bar {
        label: label.to_string(),
        value: m
            .as_ref()
            .map(|b| (*b as f64 / 1024.0, None))
            .map_err(|why| why.to_string()),
        text: m.as_ref().map(|b| bytes(*b)).unwrap_or_default(),
    }
}

/// startup.svg, memory.svg, sizes.svg into `dir`; returns their file names.
pub fn write_all(r: &Results, dir: &Path) -> anyhow::Result<Vec<&'static str>> {
    let startup: Vec<Bar> = startup_series(r)
        .iter()
        .map(|(label, m)| timing(label, m))
        .collect();
    draw(
        &dir.join("startup.svg"),
        "Start-up: median, whisker p10–p90 (log scale)",
        "milliseconds",
        &startup,
    )?;

    let memory = vec![
        size("VM: VMM anon outside guest RAM", &r.vm.memory, |m| {
            m.overhead()
        }),
        size("VM: VMM RSS outside guest RAM", &r.vm.memory, |m| {
            m.after.vmm()
        }),
        size("container: cgroup usage, sleep", &r.container.memory, |m| {
            m.container.usage
        }),
        size("bare cgroup: usage, same sleep", &r.container.memory, |m| {
            m.bare.usage
        }),
        size("serverless: worker PSS", &r.process.memory, |m| m.pss),
        size("serverless: worker private", &r.process.memory, |m| m.uss),
    ];
    draw(
        &dir.join("memory.svg"),
        "Memory overhead, measured (log scale)",
        "KiB",
        &memory,
    )?;

    let s = &r.sizes;
    let sizes = vec![
        size("VM: tiny guest", &Ok(s.tiny_guest), |b| *b),
        size("VM: Linux kernel + initramfs", &s.linux, |(k, i)| k + i),
        size("container: busybox layer (tar)", &s.layer, |l| l.0),
        size("container: busybox layer (gzip)", &s.layer, |l| l.1),
        size("serverless: function binary", &s.function, |f| f.1),
    ];
    draw(
        &dir.join("sizes.svg"),
        "Image size (log scale)",
        "KiB",
        &sizes,
    )?;
    Ok(vec!["startup.svg", "memory.svg", "sizes.svg"])
}
