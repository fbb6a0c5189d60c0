//! What a person reads after a run: the terminal summary, and `report.html` with the figures and
//! two inline SVG charts (latency percentile curves per operation; answers and errors per second).
//! With a baseline, both runs are drawn on the same charts (the baseline dashed) and a table
//! lists what changed.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::args::Baseline;
use super::results::{CurvePoint, Results, Stats};

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The x position of a percentile on a "nines" axis: 90 % at 1, 99 % at 2, 99.9 % at 3.
fn nines(percentile: f64) -> f64 {
    let tail = (100.0 - percentile).max(0.001) / 100.0;
    -tail.log10()
}

fn nines_label(x: &f64) -> String {
    match x.round() as i32 {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        3 => "99.9%".into(),
        4 => "99.99%".into(),
        _ => "max".into(),
    }
}

fn curve_points(curve: &[CurvePoint]) -> Points {
    curve.iter().map(|p| (nines(p.percentile), p.ms)).collect()
}

/// Latency against percentile, one line per operation (and overall, thicker).
pub fn latency_chart(results: &Results, baseline: Option<&Results>) -> Result<String, String> {
    let mut svg = String::new();
    let top = results
        .curves
        .values()
        .chain(baseline.into_iter().flat_map(|b| b.curves.values()))
        .flatten()
        .map(|p| p.ms)
        .fold(1.0, f64::max)
        // Headroom for the legend above the curves.
        * 1.5;
    {
        let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Latency by percentile (from the planned send time)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..5f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&nines_label)
            .x_desc("percentile")
            .y_desc("ms")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, curve)) in results.curves.iter().enumerate() {
            let (color, width) = if name == "overall" {
                (RGBColor(0, 0, 0), 3)
            } else {
                (PALETTE[i % PALETTE.len()], 2)
            };
            chart
                .draw_series(LineSeries::new(
                    curve_points(curve),
                    color.stroke_width(width),
                ))
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                });
            if let Some(old) = baseline.and_then(|b| b.curves.get(name)) {
                chart
                    .draw_series(DashedLineSeries::new(
                        curve_points(old),
                        6,
                        4,
                        color.mix(0.6).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type Points = Vec<(f64, f64)>;

/// Answers and errors per second over the whole run, the warm-up marked.
pub fn timeline_chart(
    results: &Results,
    baseline: Option<&Results>,
    warmup_s: f64,
) -> Result<String, String> {
    let mut svg = String::new();
    let series = |r: &Results| -> (Points, Points) {
        r.timeline
            .iter()
            .map(|s| {
                (
                    (s.second as f64, s.requests as f64),
                    (s.second as f64, s.errors as f64),
                )
            })
            .unzip()
    };
    let (answers, errors) = series(results);
    let old = baseline.map(series);
    let right = answers
        .len()
        .max(old.as_ref().map_or(0, |(a, _)| a.len()))
        .max(2) as f64;
    let top = answers
        .iter()
        .chain(old.iter().flat_map(|(a, _)| a))
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.4;
    {
        let root = SVGBackend::with_string(&mut svg, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Answers and errors per second", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..right, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("second of the run")
            .y_desc("per second")
            .draw()
            .map_err(|e| e.to_string())?;
        let blue = PALETTE[0];
        let red = PALETTE[3];
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(warmup_s, 0.0), (warmup_s, top)],
                4,
                4,
                grey.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("end of warm-up")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        chart
            .draw_series(LineSeries::new(answers, blue.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("answers")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue));
        chart
            .draw_series(LineSeries::new(errors, red.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("errors (not 2xx)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red));
        if let Some((old_answers, old_errors)) = old {
            for (points, color, label) in [
                (old_answers, blue, "answers, baseline"),
                (old_errors, red, "errors, baseline"),
            ] {
                chart
                    .draw_series(DashedLineSeries::new(
                        points,
                        6,
                        4,
                        color.mix(0.6).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.mix(0.6))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v}"))
}

fn change(old: f64, new: f64) -> String {
    if old == 0.0 {
        return if new == 0.0 { "=".into() } else { "new".into() };
    }
    format!("{:+.1} %", (new - old) / old * 100.0)
}

/// The rows of the figures table: overall first, then each operation.
fn rows(results: &Results) -> Vec<(String, &Stats, Option<f64>)> {
    std::iter::once((
        "overall".to_owned(),
        &results.overall,
        results.voyado.calls_per_request,
    ))
    .chain(
        results
            .operations
            .iter()
            .map(|(name, op)| (name.clone(), &op.stats, op.voyado_calls_per_request)),
    )
    .collect()
}

/// Per operation, what its Voyado calls were: each route's calls per request, most first.
fn by_route(results: &Results) -> Vec<String> {
    results
        .operations
        .iter()
        .filter_map(|(name, op)| {
            let mut routes: Vec<_> = op.voyado_calls_by_route.as_ref()?.iter().collect();
            if routes.is_empty() {
                return None;
            }
            routes.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
            let routes: Vec<String> = routes
                .iter()
                .map(|(route, n)| format!("{route} {n}"))
                .collect();
            Some(format!("{name}: {}", routes.join(", ")))
        })
        .collect()
}

/// What Voyado's default rate budget per API key carries of this traffic: the in-process market
/// opens the budget wide, so this is the line a deployment meets first.
fn budget(results: &Results) -> Option<String> {
    let per_request = results.voyado.calls_per_request.filter(|c| *c > 0.0)?;
    let budget = f64::from(crate::config::VoyadoBudget::default().rate_per_second);
    Some(format!(
        "At Voyado's default budget of {budget} calls/s per API key, {per_request} calls per \
         request carry {:.0} requests/s of this traffic.",
        budget / per_request
    ))
}

/// The replicas' line: how many, how the budget was held, Voyado's busiest second and Redis'
/// round trips per request.
fn replicas(results: &Results) -> Option<String> {
    let r = results.replicas.as_ref()?;
    let mut line = format!(
        "{} replica{} ({}; Voyado budget {}): at most {} Voyado calls in one second",
        r.replicas,
        if r.replicas == 1 { "" } else { "s" },
        r.budget,
        r.voyado_budget,
        r.peak_voyado_calls_per_second
    );
    if let Some(per_request) = r.redis_round_trips_per_request {
        let commands: Vec<String> = r
            .redis_calls
            .iter()
            .map(|(command, n)| {
                let usec = r.redis_usec_per_call.get(command).copied().unwrap_or(0.0);
                format!("{command} {n} at {usec} µs")
            })
            .collect();
        line.push_str(&format!(
            "; Redis round trips per request {per_request} (in Redis, by command: {})",
            commands.join(", ")
        ));
    }
    Some(line)
}

fn skipped(results: &Results) -> String {
    let list: Vec<String> = results
        .skipped
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    format!(
        "Planned but not sent, for want of what an earlier answer should have given (a customer \
         found, an item left to redeem): {}",
        list.join(", ")
    )
}

/// The summary printed when a run ends.
pub fn summary(results: &Results, baseline: Option<&Baseline>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>7}",
        "operation",
        "count",
        "rate/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "voyado"
    );
    for (name, s, calls) in rows(results) {
        let _ = writeln!(
            out,
            "{name:<22} {:>7} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>7}",
            s.count,
            s.rate,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms,
            s.errors,
            calls.map_or_else(|| "—".into(), |c| format!("{c:.2}"))
        );
    }
    if let Some(overall) = results.statuses.get("overall") {
        let statuses: Vec<String> = overall.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(out, "answers by status: {}", statuses.join(", "));
    }
    let _ = writeln!(
        out,
        "Voyado calls: {} ({} per request; {})",
        opt(results.voyado.calls.map(|c| c as f64)),
        opt(results.voyado.calls_per_request),
        results.voyado.counted_by
    );
    for line in by_route(results) {
        let _ = writeln!(out, "  {line}");
    }
    if let Some(line) = budget(results) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = replicas(results) {
        let _ = writeln!(out, "{line}");
    }
    if !results.skipped.is_empty() {
        let _ = writeln!(out, "{}", skipped(results));
    }
    if let Some(r) = &results.resources {
        let _ = writeln!(
            out,
            "proxy CPU {} s per 1000 requests (whole process {}); RSS {} MiB before, peak {} MiB",
            r.proxy_cpu_seconds_per_1000_requests,
            r.process_cpu_seconds_per_1000_requests,
            r.rss_before_mib,
            r.peak_rss_mib
        );
    }
    let _ = writeln!(
        out,
        "send lag p99 {} ms (the generator's own delay; above a few ms it was short of CPU)",
        results.send_lag_p99_ms
    );
    if let Some(ramp) = &results.ramp {
        for step in &ramp.steps {
            let _ = writeln!(
                out,
                "ramp {:>8.1}/s: p99 {:>9.1} ms, errors {} ({:.3} %) {}",
                step.rate,
                step.p99_ms,
                step.errors,
                step.error_share * 100.0,
                if step.held { "held" } else { "did not hold" }
            );
        }
        let _ = writeln!(
            out,
            "highest rate held (p99 ≤ {} ms, errors ≤ {} %): {} requests/s = {} tills per replica at {:.4} requests/s a till",
            ramp.slo_p99_ms,
            ramp.max_error_share * 100.0,
            opt(ramp.highest_rate_held),
            opt(ramp.tills_per_replica),
            ramp.till_requests_per_second
        );
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            out,
            "against {}: p50 {}, p99 {}, max {}, errors {} → {}",
            b.dir.display(),
            change(b.results.overall.p50_ms, results.overall.p50_ms),
            change(b.results.overall.p99_ms, results.overall.p99_ms),
            change(b.results.overall.max_ms, results.overall.max_ms),
            b.results.overall.errors,
            results.overall.errors
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `report.html`: one page, no scripts, no outside resources.
pub fn html(
    results: &Results,
    baseline: Option<&Baseline>,
    latency_svg: &str,
    timeline_svg: &str,
) -> String {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sitoo-voyado-proxy bench</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:1000px}\
         table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
         th:first-child,td:first-child{text-align:left}\
         </style></head><body>\n<h1>sitoo-voyado-proxy bench</h1>\n",
    );
    if let Some(run) = &results.run {
        let _ = writeln!(
            page,
            "<p>{} — {}; mix: {}; {} requests/s planned for {} s after a {} s warm-up; writes {}; seed {}; {} cores{}{}.</p>",
            escape(&run.mode),
            escape(&run.target),
            escape(&run.mix),
            run.rate,
            run.duration_s,
            run.warmup_s,
            if run.writes { "on" } else { "off" },
            run.seed,
            run.cores,
            run.voyado_latency
                .as_ref()
                .map_or_else(String::new, |l| format!("; Voyado latency {}", escape(l))),
            run.cache
                .as_ref()
                .map_or_else(String::new, |c| format!("; cache {}", escape(c))),
        );
    }
    page.push_str(
        "<p>Latency is counted from each request's planned send time (open loop, Poisson \
         arrivals), so a stall shows in every request it delayed. Errors are answers that are \
         not 2xx, timeouts and failed connections.</p>\n<table><tr><th>operation</th><th>count</th>\
         <th>rate/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th>\
         <th>max ms</th><th>errors</th><th>Voyado calls / request</th></tr>\n",
    );
    for (name, s, calls) in rows(results) {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td>\
             <td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            s.count,
            s.rate,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms,
            s.errors,
            calls.map_or_else(|| "—".into(), |c| format!("{c:.2}"))
        );
    }
    page.push_str("</table>\n");
    let _ = writeln!(
        page,
        "<p>Voyado calls: {} — {}. Send lag p99 {} ms.</p>",
        opt(results.voyado.calls.map(|c| c as f64)),
        escape(&results.voyado.counted_by),
        results.send_lag_p99_ms
    );
    if let Some(line) = budget(results) {
        let _ = writeln!(page, "<p>{}</p>", escape(&line));
    }
    if let Some(line) = replicas(results) {
        let _ = writeln!(page, "<p>{}</p>", escape(&line));
    }
    if !results.skipped.is_empty() {
        let _ = writeln!(page, "<p>{}</p>", escape(&skipped(results)));
    }
    if let Some(r) = &results.resources {
        let _ = writeln!(
            page,
            "<p>Proxy CPU (its runtime's threads): {} s per 1000 requests; whole process \
             (proxy, simulator, generator): {} s. Resident memory of the process: {} MiB \
             before the run, peak {} MiB (Linux /proc).</p>",
            r.proxy_cpu_seconds_per_1000_requests,
            r.process_cpu_seconds_per_1000_requests,
            r.rss_before_mib,
            r.peak_rss_mib
        );
    }
    page.push_str(
        "<h2>Answers by status</h2>\n<table><tr><th>operation</th><th>answers</th></tr>\n",
    );
    for (name, statuses) in &results.statuses {
        let list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(&list.join(", "))
        );
    }
    page.push_str("</table>\n");
    if let Some(ramp) = &results.ramp {
        let _ = writeln!(
            page,
            "<h2>Ramp</h2>\n<p>Highest rate held (p99 ≤ {} ms, errors ≤ {} %): <b>{}</b> \
             requests/s; one till makes {:.4} requests/s with this mix: <b>{}</b> tills per \
             replica.</p>\n<table><tr><th>rate/s</th><th>count</th><th>p99 ms</th>\
             <th>errors</th><th>held</th></tr>",
            ramp.slo_p99_ms,
            ramp.max_error_share * 100.0,
            opt(ramp.highest_rate_held),
            ramp.till_requests_per_second,
            opt(ramp.tills_per_replica)
        );
        for s in &ramp.steps {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                s.rate,
                s.count,
                s.p99_ms,
                s.errors,
                if s.held { "yes" } else { "no" }
            );
        }
        page.push_str("</table>\n");
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            page,
            "<h2>Changes against {}</h2>\n<p>Dashed lines in the charts are the baseline.</p>\n\
             <table><tr><th>operation</th><th>count</th><th>p50 ms</th><th>p99 ms</th>\
             <th>max ms</th><th>errors</th></tr>",
            escape(&b.dir.display().to_string())
        );
        let old_rows = rows(&b.results);
        for (name, new, _) in rows(results) {
            let Some((_, old, _)) = old_rows.iter().find(|(n, _, _)| *n == name) else {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td colspan=\"5\">not in the baseline</td></tr>",
                    escape(&name)
                );
                continue;
            };
            let cell = |o: f64, n: f64| format!("{o:.1} → {n:.1} ({})", change(o, n));
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td></tr>",
                escape(&name),
                old.count,
                new.count,
                cell(old.p50_ms, new.p50_ms),
                cell(old.p99_ms, new.p99_ms),
                cell(old.max_ms, new.max_ms),
                old.errors,
                new.errors
            );
        }
        page.push_str("</table>\n");
    }
    let _ = write!(
        page,
        "<h2>Latency</h2>\n{latency_svg}\n<h2>Throughput and errors</h2>\n{timeline_svg}\n</body></html>\n"
    );
    page
}
