"""reports/bench.json, bench.md and bench.png from one run's measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.targets import Verdict

# The key names, in its order: bench.json always holds exactly these.
KEYS: tuple[str, ...] = (
    "http.baseline_hello_rps", "http.baseline_sqlite_insert_rps",
    "http.get_note_rps", "http.proxy_get_note_rps", "http.list_rps", "http.search_rps",
    "http.create_note_rps",
    "http.update_note_rps", "http.get_note_p99_ms", "http.create_note_p99_ms", "http.errors",
    "build.cold_s", "build.noop_s", "build.code_change_s", "build.image_bytes",
    "build.base_image_bytes",
    "deploy.hosts", "deploy.first_s", "deploy.noop_s", "deploy.code_change_s",
    "deploy.naive_code_change_s",
    "deploy.code_change_bytes_per_host", "deploy.naive_bytes_per_host",
    "redeploy.count", "redeploy.requests", "redeploy.failed", "redeploy.max_gap_ms",
    "redeploy.lost_or_doubled",
)  # fmt: skip
# The operating commands' rows: (label, the key on 1 host, the key on 2 hosts).
OPERATE_ROWS = (
    ("`status`", "operate.status_1host_s", "operate.status_2hosts_s"),
    ("`status`, connections kept open", "operate.status_1host_warm_s",
     "operate.status_2hosts_warm_s"),
    ("`status --json`", "operate.status_json_1host_s", "operate.status_json_2hosts_s"),
    ("`logs app --since 10m`", "operate.logs_1host_s", "operate.logs_2hosts_s"),
    ("`exec --host H app true`", "operate.exec_s", None),
    ("`audit`", "operate.audit_1host_s", "operate.audit_2hosts_s"),
    ("first `status`: inventory listing and connections new", None, "operate.status_first_s"),
)  # fmt: skip
OPERATE_KEYS = tuple(key for row in OPERATE_ROWS for key in row[1:] if key is not None)
KEYS += OPERATE_KEYS
SCENARIOS = (
    ("baseline_hello", "bare `/hello` (framework ceiling)"),
    ("baseline_sqlite_insert", "bare sqlite3 `BEGIN IMMEDIATE` insert (write ceiling)"),
    ("get_note", "`GET /api/notes/{id}`"),
    ("list", "`GET /api/notes` (a page of 20)"),
    ("search", "`GET /api/notes?q=`"),
    ("create_note", "`POST /api/notes`"),
    ("update_note", "`PUT /api/notes/{id}` with `If-Match`"),
)


def _failures(kinds: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items())) or "none"


class ReportError(ValueError):
    """The measurements lack a key the report promises."""


def nested(flat: dict[str, float], keys: tuple[str, ...] = KEYS) -> dict[str, dict[str, float]]:
    """{"http.x": 1} → {"http": {"x": 1}}, refusing a run that misses any promised key."""
    missing = [key for key in keys if key not in flat]
    if missing:
        raise ReportError(f"the run measured no value for {', '.join(missing)}; rerun the bench")
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        group, name = key.split(".", 1)
        out.setdefault(group, {})[name] = flat[key]
    return out


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def operate_markdown(flat: dict[str, float], details: dict[str, Any]) -> list[str]:
    """The operating commands' table: the median seconds of fresh processes."""
    runs = details.get("operate_runs", "?")
    lines = [
        f"| operating command, a fresh process (median of {runs}) | 1 host | 2 hosts |",
        "|---|---:|---:|",
    ]
    for label, one, two in OPERATE_ROWS:
        cells = [f"{flat[key]:.2f} s" if key else "—" for key in (one, two)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return lines


# The deploys whose task times the breakdown shows, as bench/deploy_times.py names them.
BREAKDOWN_PLAYS = (("first", "first"), ("noop", "no-change"), ("code_change", "code change"))


def breakdown_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Where each deploy's seconds went, by the role's task file: tasks run and seconds."""
    if not rows:
        return []
    labels = " | ".join(label for _, label in BREAKDOWN_PLAYS)
    lines = [
        f"| deploy seconds by task file (tasks ended) | {labels} |",
        "|---|" + "---:|" * len(BREAKDOWN_PLAYS),
    ]
    for row in rows:
        cells = []
        for name, _ in BREAKDOWN_PLAYS:
            cell = row.get(name, {"count": 0, "seconds": 0.0})
            count = f" ({cell['count']})" if cell["count"] else ""
            cells.append(f"{cell['seconds']:.1f}{count}")
        lines.append(f"| `{row['tasks']}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(
    flat: dict[str, float],
    details: dict[str, Any],
    verdicts: list[Verdict],
    machine: str,
) -> str:
    """The tables a person reads: HTTP, sweep, build, deploy, redeploy, targets."""
    scenarios = details.get("scenarios", {})
    lines = [f"Machine: {machine}. Mode: {details.get('mode', 'full')}.", ""]
    lines += [
        "| HTTP scenario | req/s | p50 ms | p99 ms | errors | wrk CPU % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in SCENARIOS:
        row = scenarios.get(name, {})
        lines.append(
            f"| {label} | {_num(row.get('rps', 0))} | {row.get('p50_ms', 0):.1f} "
            f"| {row.get('p99_ms', 0):.1f} | {row.get('errors', 0)} "
            f"| {row.get('generator_cpu_pct', 0):.0f} |"
        )
    sweep = details.get("sweep", [])
    if sweep:
        lines += [
            "",
            "| workers x threads | get_note req/s | create_note req/s |",
            "|---|---:|---:|",
        ]
        for row in sweep:
            mark = " (best)" if row.get("best") else ""
            lines.append(
                f"| {row['workers']} x {row['threads']}{mark} "
                f"| {_num(row['get_note_rps'])} | {_num(row['create_note_rps'])} |"
            )
    lines += [
        "",
        "| build | figure |",
        "|---|---:|",
        f"| cold ({details.get('cold_scope', 'no base, no wheels, no cache')}) "
        f"| {flat['build.cold_s']:.1f} s |",
        f"| no-change rebuild | {flat['build.noop_s']:.1f} s |",
        f"| code-only-change rebuild | {flat['build.code_change_s']:.1f} s |",
        f"| image / base image | {flat['build.image_bytes'] / 1e6:.1f} MB / "
        f"{flat['build.base_image_bytes'] / 1e6:.1f} MB |",
        "",
        f"| deploy ({flat['deploy.hosts']:.0f} host(s)) | kit "
        "| naive (`docker save` + `compose up`) |",
        "|---|---:|---:|",
        f"| first deploy | {flat['deploy.first_s']:.1f} s | |",
        f"| no-change re-run | {flat['deploy.noop_s']:.1f} s | |",
        f"| code-change redeploy | {flat['deploy.code_change_s']:.1f} s "
        f"| {flat['deploy.naive_code_change_s']:.1f} s |",
        f"| bytes shipped per host | {flat['deploy.code_change_bytes_per_host']:,.0f} "
        f"| {flat['deploy.naive_bytes_per_host']:,.0f} |",
        "",
        *breakdown_markdown(details.get("deploy_breakdown", [])),
        f"| {flat['redeploy.count']:.0f} redeploys + 1 rollback under traffic | figure |",
        "|---|---:|",
        f"| requests (POST, GET, PUT) | {flat['redeploy.requests']:,.0f} |",
        f"| failed | {flat['redeploy.failed']:,.0f} |",
        f"| acknowledged notes lost or doubled | {flat['redeploy.lost_or_doubled']:,.0f} |",
        f"| longest gap without a success | {flat['redeploy.max_gap_ms']:,.0f} ms |",
        f"| failures by kind | {_failures(details.get('redeploy_failures', {}))} |",
        "",
        *operate_markdown(flat, details),
        "",
        *target_lines(verdicts),
    ]
    return "\n".join(lines) + "\n"


def chart(flat: dict[str, float], path: Path) -> None:
    """Three panels of ratios, each bar labelled with its figure: readable at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (http, deploy, redeploy) = plt.subplots(1, 3, figsize=(14, 4.5))
    names = ["hello", "insert", "get", "get (proxy)", "list", "search", "create", "update"]
    keys = [
        "baseline_hello_rps", "baseline_sqlite_insert_rps", "get_note_rps",
        "proxy_get_note_rps", "list_rps", "search_rps", "create_note_rps", "update_note_rps",
    ]  # fmt: skip
    values = [flat[f"http.{key}"] for key in keys]
    colours = ["#999999", "#999999"] + ["#3b6ea5"] * 6
    bars = http.bar(names, values, color=colours)
    http.bar_label(bars, fmt="%.0f", fontsize=8)
    http.set_title("HTTP req/s (grey: bare ceilings)")
    pairs = [
        ("first", flat["deploy.first_s"], "#3b6ea5"),
        ("no-change", flat["deploy.noop_s"], "#3b6ea5"),
        ("code change", flat["deploy.code_change_s"], "#3b6ea5"),
        ("naive code\nchange", flat["deploy.naive_code_change_s"], "#c0504d"),
    ]
    bars = deploy.bar([p[0] for p in pairs], [p[1] for p in pairs], color=[p[2] for p in pairs])
    deploy.bar_label(bars, fmt="%.1f s", fontsize=8)
    deploy.set_title("Deploy time (s)")
    shipped = [
        flat["deploy.code_change_bytes_per_host"] / 1e6,
        flat["deploy.naive_bytes_per_host"] / 1e6,
    ]
    bars = redeploy.bar(["kit", "naive"], shipped, color=["#3b6ea5", "#c0504d"])
    redeploy.bar_label(bars, fmt="%.2f MB", fontsize=8)
    redeploy.set_title(
        "MB shipped per host, code change\n"
        f"redeploy under load: {flat['redeploy.failed']:.0f} failed of "
        f"{flat['redeploy.requests']:.0f}, max gap {flat['redeploy.max_gap_ms']:.0f} ms",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _write_json(
    path: Path,
    figures: dict[str, dict[str, float]],
    details: dict[str, Any],
    verdicts: list[Verdict],
    machine: str,
) -> None:
    """One run's JSON: the figures by group, the targets, the details and the machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **figures,
        "targets": [{"target": v.name, "met": v.met, "figure": v.figure} for v in verdicts],
        "details": details,
        "machine": machine,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def target_lines(verdicts: list[Verdict]) -> list[str]:
    """The targets as a markdown table."""
    return [
        "| target | figure | met |",
        "|---|---:|---|",
        *(f"| {v.name} | {v.figure} | {'yes' if v.met else 'MISSED'} |" for v in verdicts),
    ]


def write_operate(
    directory: Path,
    flat: dict[str, float],
    details: dict[str, Any],
    verdicts: list[Verdict],
    machine: str,
) -> list[Path]:
    """reports/operate.json and operate.md of a run of the operating commands alone."""
    paths = [directory / "operate.json", directory / "operate.md"]
    _write_json(paths[0], nested(flat, OPERATE_KEYS), details, verdicts, machine)
    lines = [f"Machine: {machine}. Mode: {details.get('mode', 'full')}.", ""]
    lines += operate_markdown(flat, details)
    lines += ["", *target_lines(verdicts)]
    paths[1].write_text("\n".join(lines) + "\n")
    return paths


def write(
    directory: Path,
    flat: dict[str, float],
    details: dict[str, Any],
    verdicts: list[Verdict],
    machine: str,
) -> list[Path]:
    """Write the three report files; returns their paths."""
    paths = [directory / "bench.json", directory / "bench.md", directory / "bench.png"]
    _write_json(paths[0], nested(flat), details, verdicts, machine)
    paths[1].write_text(markdown(flat, details, verdicts, machine))
    chart(flat, paths[2])
    return paths
