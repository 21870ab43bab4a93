//! The status page's three forms, from snapshots of the groups' shared
//! figures (metrics.rs): a page a person reads, JSON, and Prometheus' text
//! exposition format. Pure functions; the Apache handler that serves them
//! is embedded/status_page.rs.

use super::metrics::{GroupSnapshot, BUCKETS};
use std::fmt::Write;

/// What `?format=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Prometheus,
}

impl Format {
    /// From the query string: `format=json`, `format=prometheus` (or
    /// `format=html`, the default). Err: the value not understood.
    pub fn from_query(query: Option<&str>) -> Result<Format, String> {
        let value = query
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("format="))
            .unwrap_or("html");
        match value {
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            "prometheus" => Ok(Format::Prometheus),
            other => Err(format!("unknown format '{}'; expected html, json or prometheus", other.escape_default())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

pub fn render(format: Format, groups: &[(String, GroupSnapshot)]) -> String {
    match format {
        Format::Html => html(groups),
        Format::Json => json(groups),
        Format::Prometheus => prometheus(groups),
    }
}

fn uptime_seconds(group: &GroupSnapshot, started_ms: u64) -> f64 {
    group.now_ms.saturating_sub(started_ms) as f64 / 1000.0
}

fn milliseconds(bound: Option<f64>) -> String {
    match bound {
        Some(seconds) if seconds < 1.0 => format!("≤ {} ms", seconds * 1000.0),
        Some(seconds) => format!("≤ {seconds} s"),
        None => "—".to_owned(),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(groups: &[(String, GroupSnapshot)]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <title>mod_wsgi_rs status</title>\n\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
         td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}th{background:#eee}\
         td.state{text-align:left}</style></head><body>\n<h1>mod_wsgi_rs status</h1>\n",
    );
    if groups.is_empty() {
        out.push_str("<p id=\"no-groups\">No daemon process groups are configured.</p>\n");
    }
    for (name, group) in groups {
        let id = escape_html(name);
        let _ = write!(
            out,
            "<section class=\"group\" data-group=\"{id}\">\n<h2>Daemon process group {id}</h2>\n<ul>\n\
             <li>Processes: <span class=\"processes\">{}</span></li>\n\
             <li>Requests waiting for a thread: <span class=\"waiting\">{}</span></li>\n\
             <li>Request time (of {} requests): p50 {}, p90 {}, p99 {}</li>\n",
            group.processes.len(),
            group.waiting,
            group.requests_timed(),
            milliseconds(group.quantile_bound(0.5)),
            milliseconds(group.quantile_bound(0.9)),
            milliseconds(group.quantile_bound(0.99)),
        );
        match group.last_replacement {
            Some((pid, reason, when)) => {
                let _ = writeln!(
                    out,
                    "<li>Last replacement: <span class=\"last-replacement\">process {pid} ({}), {:.0} s ago</span></li>",
                    reason.name(),
                    group.now_ms.saturating_sub(when) as f64 / 1000.0
                );
            }
            None => out.push_str("<li>Last replacement: <span class=\"last-replacement\">none</span></li>\n"),
        }
        let counted: Vec<String> =
            group.replacements.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{} {n}", r.name())).collect();
        let _ = writeln!(
            out,
            "<li>Replacements: <span class=\"replacements\">{}</span></li>\n</ul>",
            if counted.is_empty() { "none".to_owned() } else { counted.join(", ") }
        );
        out.push_str(
            "<table class=\"processes\">\n<tr><th>pid</th><th>uptime</th><th>requests</th><th>busy threads</th>\
             <th>idle threads</th><th>RSS</th><th>state</th></tr>\n",
        );
        for p in &group.processes {
            let state = match p.retiring {
                Some(reason) => format!("being replaced ({})", reason.name()),
                None => "serving".to_owned(),
            };
            let _ = writeln!(
                out,
                "<tr class=\"process\" data-pid=\"{}\"><td>{}</td><td>{:.0} s</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{:.1} MiB</td><td class=\"state\">{state}</td></tr>",
                p.pid,
                p.pid,
                uptime_seconds(group, p.started_ms),
                p.requests,
                p.busy,
                p.threads.saturating_sub(p.busy),
                p.rss_bytes as f64 / 1048576.0,
            );
        }
        out.push_str("</table>\n</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: Option<f64>) -> String {
    value.map_or("null".to_owned(), |v| v.to_string())
}

fn json(groups: &[(String, GroupSnapshot)]) -> String {
    let mut items = Vec::new();
    for (name, group) in groups {
        let processes: Vec<String> = group
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{{\"pid\": {}, \"uptime_seconds\": {:.3}, \"requests\": {}, \"busy_threads\": {}, \"idle_threads\": {}, \
                     \"rss_bytes\": {}, \"replacing\": {}}}",
                    p.pid,
                    uptime_seconds(group, p.started_ms),
                    p.requests,
                    p.busy,
                    p.threads.saturating_sub(p.busy),
                    p.rss_bytes,
                    p.retiring.map_or("null".to_owned(), |r| json_string(r.name()))
                )
            })
            .collect();
        let replacements: Vec<String> =
            group.replacements.iter().map(|(r, n)| format!("{}: {n}", json_string(r.name()))).collect();
        let last = match group.last_replacement {
            Some((pid, reason, when)) => format!(
                "{{\"pid\": {pid}, \"reason\": {}, \"seconds_ago\": {:.3}}}",
                json_string(reason.name()),
                group.now_ms.saturating_sub(when) as f64 / 1000.0
            ),
            None => "null".to_owned(),
        };
        let mut cumulative = 0;
        let buckets: Vec<String> = group
            .durations
            .iter()
            .enumerate()
            .map(|(i, n)| {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("\"+Inf\"".to_owned(), |b| b.to_string());
                format!("[{le}, {cumulative}]")
            })
            .collect();
        items.push(format!(
            "{{\"name\": {}, \"waiting\": {}, \"processes\": [{}], \"replacements\": {{{}}}, \"last_replacement\": {last}, \
             \"request_seconds\": {{\"count\": {}, \"sum\": {}, \"p50\": {}, \"p90\": {}, \"p99\": {}, \"buckets\": [{}]}}}}",
            json_string(name),
            group.waiting,
            processes.join(", "),
            replacements.join(", "),
            group.requests_timed(),
            group.duration_sum_us as f64 / 1e6,
            json_number(group.quantile_bound(0.5)),
            json_number(group.quantile_bound(0.9)),
            json_number(group.quantile_bound(0.99)),
            buckets.join(", ")
        ));
    }
    format!("{{\"groups\": [{}]}}\n", items.join(", "))
}

fn label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn prometheus(groups: &[(String, GroupSnapshot)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        samples(&mut out);
    };
    family("wsgi_rs_processes", "gauge", "Daemon processes of the group.", &mut |out| {
        for (name, g) in groups {
            let _ = writeln!(out, "wsgi_rs_processes{{group=\"{}\"}} {}", label(name), g.processes.len());
        }
    });
    family("wsgi_rs_requests_waiting", "gauge", "Requests passed to the group that no daemon thread has taken yet.", &mut |out| {
        for (name, g) in groups {
            let _ = writeln!(out, "wsgi_rs_requests_waiting{{group=\"{}\"}} {}", label(name), g.waiting);
        }
    });
    family("wsgi_rs_threads", "gauge", "Worker threads of each daemon process, busy or idle.", &mut |out| {
        for (name, g) in groups {
            for p in &g.processes {
                for (state, n) in [("busy", p.busy), ("idle", p.threads.saturating_sub(p.busy))] {
                    let _ = writeln!(out, "wsgi_rs_threads{{group=\"{}\",pid=\"{}\",state=\"{state}\"}} {n}", label(name), p.pid);
                }
            }
        }
    });
    family("wsgi_rs_process_requests_total", "counter", "Requests a daemon process has served.", &mut |out| {
        for (name, g) in groups {
            for p in &g.processes {
                let _ = writeln!(out, "wsgi_rs_process_requests_total{{group=\"{}\",pid=\"{}\"}} {}", label(name), p.pid, p.requests);
            }
        }
    });
    family("wsgi_rs_process_resident_memory_bytes", "gauge", "Resident memory of a daemon process.", &mut |out| {
        for (name, g) in groups {
            for p in &g.processes {
                let _ = writeln!(
                    out,
                    "wsgi_rs_process_resident_memory_bytes{{group=\"{}\",pid=\"{}\"}} {}",
                    label(name),
                    p.pid,
                    p.rss_bytes
                );
            }
        }
    });
    family("wsgi_rs_process_start_time_seconds", "gauge", "When a daemon process started, in seconds since the epoch.", &mut |out| {
        for (name, g) in groups {
            for p in &g.processes {
                let _ = writeln!(
                    out,
                    "wsgi_rs_process_start_time_seconds{{group=\"{}\",pid=\"{}\"}} {}",
                    label(name),
                    p.pid,
                    p.started_ms as f64 / 1000.0
                );
            }
        }
    });
    family("wsgi_rs_replacements_total", "counter", "Daemon processes replaced, by reason.", &mut |out| {
        for (name, g) in groups {
            for (reason, n) in &g.replacements {
                let _ = writeln!(out, "wsgi_rs_replacements_total{{group=\"{}\",reason=\"{}\"}} {n}", label(name), reason.name());
            }
        }
    });
    family("wsgi_rs_request_duration_seconds", "histogram", "Time daemon threads spent on requests.", &mut |out| {
        for (name, g) in groups {
            let group = label(name);
            let mut cumulative = 0;
            for (i, n) in g.durations.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(out, "wsgi_rs_request_duration_seconds_bucket{{group=\"{group}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "wsgi_rs_request_duration_seconds_sum{{group=\"{group}\"}} {}", g.duration_sum_us as f64 / 1e6);
            let _ = writeln!(out, "wsgi_rs_request_duration_seconds_count{{group=\"{group}\"}} {cumulative}");
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{ProcessSnapshot, Reason};
    use super::*;

    fn group() -> GroupSnapshot {
        let mut durations = vec![0; BUCKETS.len() + 1];
        durations[3] = 90; // <= 10 ms
        durations[6] = 9; // <= 100 ms
        durations[BUCKETS.len()] = 1; // over 60 s
        GroupSnapshot {
            processes: vec![ProcessSnapshot {
                pid: 4242,
                started_ms: 1_000_000,
                requests: 100,
                busy: 1,
                threads: 4,
                rss_bytes: 30 << 20,
                retiring: Some(Reason::MaximumRequests),
            }],
            waiting: 2,
            replacements: Reason::ALL.iter().map(|r| (*r, u64::from(*r == Reason::MaximumRequests) * 3)).collect(),
            last_replacement: Some((4241, Reason::MaximumRequests, 1_000_000)),
            durations,
            duration_sum_us: 1_500_000,
            now_ms: 1_060_000,
        }
    }

    #[test]
    fn formats_come_from_the_query() {
        assert_eq!(Format::from_query(None), Ok(Format::Html));
        assert_eq!(Format::from_query(Some("format=json")), Ok(Format::Json));
        assert_eq!(Format::from_query(Some("refresh=5&format=prometheus")), Ok(Format::Prometheus));
        assert!(Format::from_query(Some("format=xml")).unwrap_err().contains("unknown format 'xml'"));
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let g = group();
        assert_eq!(g.quantile_bound(0.5), Some(0.01));
        assert_eq!(g.quantile_bound(0.9), Some(0.01));
        assert_eq!(g.quantile_bound(0.99), Some(0.1));
        assert_eq!(g.quantile_bound(1.0), None);
    }

    #[test]
    fn html_names_groups_and_processes() {
        let page = html(&[("site <a>".to_owned(), group())]);
        assert!(page.contains("Daemon process group site &lt;a&gt;"), "{page}");
        assert!(page.contains("data-pid=\"4242\""), "{page}");
        assert!(page.contains("being replaced (maximum-requests)"), "{page}");
        assert!(page.contains("process 4241 (maximum-requests), 60 s ago"), "{page}");
        assert!(page.contains("p50 ≤ 10 ms, p90 ≤ 10 ms, p99 ≤ 100 ms"), "{page}");
    }

    #[test]
    fn json_is_complete() {
        let text = json(&[("g\"1".to_owned(), group())]);
        assert!(text.starts_with("{\"groups\": [{\"name\": \"g\\\"1\", \"waiting\": 2, "), "{text}");
        assert!(text.contains("\"replacing\": \"maximum-requests\""), "{text}");
        assert!(text.contains("[\"+Inf\", 100]"), "{text}");
    }

    #[test]
    fn prometheus_histogram_is_cumulative() {
        let text = prometheus(&[("g".to_owned(), group())]);
        assert!(text.contains("wsgi_rs_request_duration_seconds_bucket{group=\"g\",le=\"0.01\"} 90\n"), "{text}");
        assert!(text.contains("wsgi_rs_request_duration_seconds_bucket{group=\"g\",le=\"60\"} 99\n"), "{text}");
        assert!(text.contains("wsgi_rs_request_duration_seconds_bucket{group=\"g\",le=\"+Inf\"} 100\n"), "{text}");
        assert!(text.contains("wsgi_rs_request_duration_seconds_count{group=\"g\"} 100\n"), "{text}");
        assert!(text.contains("wsgi_rs_replacements_total{group=\"g\",reason=\"maximum-requests\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE wsgi_rs_process_requests_total counter\nwsgi_rs_process_requests_total{"), "{text}");
    }
}
