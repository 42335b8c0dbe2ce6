"""A scenario's results for people: a timeline table, charts (SVG, in a self-contained HTML page).

Everything here reads the `ScenarioResult` the runner returns; nothing is
computed that the run did not measure.  The charts are plain SVG written by
hand-sized code (a line chart is a polyline), so the page needs no script, no
network and no library, and the same SVG goes into the docs.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from dnslab.lab.scenario.run import ScenarioResult, VariantResult
from dnslab.lab.scenario.series import MILESTONES, Bucket
from dnslab.lab.scenario.spec import duration_text

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
BAR = 20


def clock_text(value: float | None) -> str:
    """Seconds as people read them: 45s, 12m30s, 23h4m, 1d2h."""
    if value is None:
        return "never"
    value = int(round(value))
    days, rest = divmod(value, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


# --- text ------------------------------------------------------------------------------------

def text_report(result: ScenarioResult) -> str:
    scenario = result.scenario
    lines = [f"Scenario {scenario.name}: {scenario.title}",
             f"{scenario.population} clients, {duration_text(scenario.duration)} of lab time in buckets of "
             f"{duration_text(scenario.bucket)}, seed {scenario.seed}", ""]
    for variant in result.variants:
        lines += _variant_table(variant, scenario.new_answer is not None)
        lines.append("")
    if scenario.new_answer is not None:
        lines += _milestone_table(result)
        lines.append("")
    if scenario.endpoints:
        lines += _endpoint_table(result)
        lines.append("")
    lines += _totals_table(result)
    if scenario.lesson:
        lines += ["", "Lesson: " + scenario.lesson]
    return "\n".join(lines) + "\n"


def _variant_table(variant: VariantResult, tracks_new: bool) -> list[str]:
    totals = variant.series.totals()
    lines = [f"== {variant.variant.name}: {variant.variant.title}",
             f"   {totals['lookups']:,} lookups, {totals['queries']:,} sent as queries, "
             f"{totals['failed_lookups']:,} failed lookups (SERVFAIL, timeout), "
             f"{totals['failed_connections']:,} failed connections; ran in {variant.wall_seconds:.1f} s",
             "   (failed: connections to a down endpoint; errors: lookups that got no answer)"]
    events = sorted(variant.applied, key=lambda item: item["at"])
    head = f"   {'time':>7}  {'on new' if tracks_new else '':>6} {'':{BAR}}  {'lookups':>8} {'queries':>8} " \
           f"{'failed':>7} {'errors':>7} {'upstream':>8}  timeline"
    lines.append(head)
    previous: tuple[Any, ...] | None = None
    folded = 0
    for bucket in variant.series.buckets:
        end = bucket.start + variant.series.bucket
        notes = [item["event"] for item in events if bucket.start <= item["at"] < end]
        share = bucket.seeing_new
        bar = "" if share is None else "#" * round(share * BAR)
        shown = "" if share is None else f"{share:.0%}"
        upstream = sum(count for where, count in bucket.upstream.items() if where not in variant.targets)
        queries = sum(bucket.queries.values())
        shape = (shown, bucket.failed_connections > 0, bucket.failed_lookups > 0, _size(queries), _size(upstream))
        if shape == previous and not notes and bucket is not variant.series.buckets[-1]:
            folded += 1  # a row like the one above: folded, so the table shows where things change
            continue
        if folded:
            lines.append(f"   {'...':>7}  ({folded} more like the row above)")
            folded = 0
        previous = shape
        lines.append(f"   {clock_text(bucket.start):>7}  {shown:>6} {bar:{BAR}}  {bucket.lookups:>8,} "
                     f"{queries:>8,} {bucket.failed_connections:>7,} {bucket.failed_lookups:>7,} {upstream:>8,}  "
                     + "; ".join(notes))
    return lines


def _size(count: int) -> int:
    """The order of magnitude of a count: rows whose counts differ by less are alike."""
    return len(str(count)) if count else 0


def _milestone_table(result: ScenarioResult) -> list[str]:
    scenario = result.scenario
    lines = [f"Time until clients have {scenario.new_answer} (counted from {clock_text(scenario.since)}):",
             f"   {'variant':<24}" + "".join(f"{str(p) + ' %':>10}" for p in MILESTONES)]
    for variant in result.variants:
        marks = variant.series.milestones
        lines.append(f"   {variant.variant.name:<24}" + "".join(f"{clock_text(marks[p]):>10}" for p in MILESTONES))
    return lines


def _endpoint_table(result: ScenarioResult) -> list[str]:
    endpoints = sorted(result.scenario.endpoints)
    lines = ["Connections per endpoint (share of the working connections):",
             f"   {'variant':<24}" + "".join(f"{address:>16}" for address in endpoints)]
    for variant in result.variants:
        connections = variant.series.totals()["connections"]
        total = sum(connections.values()) or 1
        lines.append(f"   {variant.variant.name:<24}" + "".join(
            f"{connections.get(address, 0):>9,} {connections.get(address, 0) / total:>5.0%}" for address in endpoints))
    return lines


def _totals_table(result: ScenarioResult) -> list[str]:
    lines = [f"   {'variant':<24}{'lookups':>10}{'queries':>10}{'failed':>8}{'errors':>8}  queries received upstream"]
    for variant in result.variants:
        totals = variant.series.totals()
        upstream = ", ".join(f"{where} {count:,}" for where, count in sorted(totals["upstream"].items(),
                                                                              key=lambda item: -item[1]))
        lines.append(f"   {variant.variant.name:<24}{totals['lookups']:>10,}{totals['queries']:>10,}"
                     f"{totals['failed_connections']:>8,}{totals['failed_lookups']:>8,}  {upstream}")
    return lines


# --- charts ----------------------------------------------------------------------------------

def charts(result: ScenarioResult) -> list[tuple[str, str]]:
    """(title, svg) for each chart the result has data for: share on the new answer, failed
    connections, and the load on the lab's servers, one line per variant."""
    variants = result.variants
    made: list[tuple[str, str]] = []
    if result.scenario.new_answer is not None:
        title = f"Share of clients whose answer has {result.scenario.new_answer}"
        made.append((title, line_chart(title, variants, lambda b: 100 * (b.seeing_new or 0.0), "% of clients",
                                       y_max=100, mark=result.scenario.since)))
    if any(v.series.totals()["failed_connections"] for v in variants) or result.scenario.endpoints:
        title = "Failed connections (client's endpoint down)"
        made.append((title, line_chart(title, variants, lambda b: b.failed_connections, "per bucket")))
    if any(v.series.totals()["failed_lookups"] for v in variants):
        title = "Failed lookups (SERVFAIL or no answer)"
        made.append((title, line_chart(title, variants, lambda b: b.failed_lookups, "per bucket")))
    endpoint_loads = _endpoint_loads(result)
    if endpoint_loads:
        made.append(endpoint_loads)
    title = "Queries reaching the authoritative servers"
    made.append((title, line_chart(title, variants, lambda b: _authoritative(b, variants[0]), "per bucket")))
    title = "Queries from clients to their resolver"
    made.append((title, line_chart(title, variants, lambda b: sum(b.queries.values()), "per bucket")))
    return made


def _authoritative(bucket: Bucket, variant: VariantResult) -> float:
    targets = variant.targets
    return sum(count for where, count in bucket.upstream.items() if where not in targets)


def _endpoint_loads(result: ScenarioResult) -> tuple[str, str] | None:
    """Connections per endpoint, one bar group per variant: how evenly the load was spread."""
    endpoints = sorted(result.scenario.endpoints)
    if not endpoints:
        return None
    title = "Connections per endpoint"
    width, height, left, top, bottom = 640, 240, 56, 28, 40
    loads = [[v.series.totals()["connections"].get(address, 0) for address in endpoints] for v in result.variants]
    peak = max((max(row) for row in loads if row), default=0) or 1
    group = (width - left - 16) / len(endpoints)
    bar = group / (len(result.variants) + 1)
    parts = [_svg_head(width, height, title)]
    parts.append(_axes(left, top, width - 16, height - bottom, peak, "connections"))
    for index, address in enumerate(endpoints):
        x0 = left + index * group + bar / 2
        for number, row in enumerate(loads):
            value = row[index]
            h = (height - bottom - top) * value / peak
            x = x0 + number * bar
            parts.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar * 0.9:.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[number % len(COLOURS)]}"><title>'
                         f'{html.escape(result.variants[number].variant.name)} {address}: {value}</title></rect>')
        parts.append(f'<text x="{x0 + group / 2 - bar / 2:.1f}" y="{height - bottom + 14}" font-size="11" '
                     f'text-anchor="middle">{address}</text>')
    parts.append(_legend([v.variant.name for v in result.variants], left, height - 10))
    parts.append("</svg>")
    return title, "".join(parts)


def line_chart(title: str, variants: Sequence[VariantResult], value: Any, unit: str,
               y_max: float | None = None, mark: float | None = None) -> str:
    """One line per variant over the buckets; *mark* draws a dashed line at that time (the change)."""
    width, height, left, top, bottom = 640, 240, 56, 28, 40
    series = [[float(value(bucket)) for bucket in v.series.buckets] for v in variants]
    peak = y_max if y_max is not None else max((max(row) for row in series if row), default=0.0) or 1.0
    span = max(len(row) for row in series) if series else 1
    plot_w, plot_h = width - left - 16, height - top - bottom
    parts = [_svg_head(width, height, title), _axes(left, top, width - 16, height - bottom, peak, unit)]
    bucket = variants[0].series.bucket if variants else 1.0
    for tick in range(0, 5):
        index = round(tick * (span - 1) / 4) if span > 1 else 0
        x = left + plot_w * (index / max(1, span - 1))
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="11" text-anchor="middle">'
                     f'{clock_text(index * bucket)}</text>')
    if mark is not None and span > 1:
        x = left + plot_w * min(1.0, (mark / bucket) / (span - 1))
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#888" '
                     f'stroke-dasharray="4 3"><title>{clock_text(mark)}</title></line>')
    for number, row in enumerate(series):
        points = " ".join(f"{left + plot_w * (i / max(1, span - 1)):.1f},{top + plot_h * (1 - v / peak):.1f}"
                          for i, v in enumerate(row))
        parts.append(f'<polyline fill="none" stroke="{COLOURS[number % len(COLOURS)]}" stroke-width="2" '
                     f'points="{points}"><title>{html.escape(variants[number].variant.name)}</title></polyline>')
    parts.append(_legend([v.variant.name for v in variants], left, height - 10))
    parts.append("</svg>")
    return "".join(parts)


def _svg_head(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">'
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="8" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>')


def _axes(left: float, top: float, right: float, bottom: float, peak: float, unit: str) -> str:
    parts = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>']
    for fraction in (0, 0.5, 1):
        y = bottom - (bottom - top) * fraction
        label = f"{peak * fraction:,.0f}" if peak >= 10 else f"{peak * fraction:.2g}"
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>')
        if fraction:
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ddd"/>')
    parts.append(f'<text x="12" y="{(top + bottom) / 2:.1f}" font-size="11" '
                 f'transform="rotate(-90 12 {(top + bottom) / 2:.1f})" text-anchor="middle">{html.escape(unit)}</text>')
    return "".join(parts)


def _legend(names: list[str], x: float, y: float) -> str:
    parts = []
    for number, name in enumerate(names):
        colour = COLOURS[number % len(COLOURS)]
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11">{html.escape(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(parts)


def svg_figure(result: ScenarioResult) -> str:
    """Every chart stacked in one SVG: the picture a docs page shows."""
    made = charts(result)
    height = 240
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{height * len(made)}" '
             f'viewBox="0 0 640 {height * len(made)}">']
    for index, (_, svg) in enumerate(made):
        parts.append(f'<g transform="translate(0 {index * height})">{svg}</g>')
    parts.append("</svg>")
    return "".join(parts) + "\n"


def html_report(result: ScenarioResult) -> str:
    scenario = result.scenario
    body = [f"<h1>{html.escape(scenario.title)}</h1>",
            f"<p>{scenario.population} clients, {duration_text(scenario.duration)} of lab time, seed "
            f"{scenario.seed}. Every lookup was a real query through the lab's resolver "
            f"(or the client's own cache, as the scenario says).</p>"]
    if scenario.lesson:
        body.append(f"<p><b>Lesson.</b> {html.escape(scenario.lesson)}</p>")
    for title, svg in charts(result):
        body.append(f"<figure>{svg}</figure>")
    body.append(f"<pre>{html.escape(text_report(result))}</pre>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(scenario.name)}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}"
            "figure{margin:1em 0}pre{font-size:12px;overflow-x:auto}</style></head><body>"
            + "".join(body) + "</body></html>\n")
