"""Write reports/drills.json (flat keys plus per-drill detail) and reports/drills.md."""

from __future__ import annotations

import json
from pathlib import Path

from drills.outcome import DrillOutcome, Figure


def merged_figures(outcomes: list[DrillOutcome]) -> dict[str, Figure]:
    """All drills' figures under their keys; numeric figures reported twice are summed."""
    merged: dict[str, Figure] = {}
    for outcome in outcomes:
        for key, value in outcome.figures.items():
            earlier = merged.get(key)
            both_numbers = all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in (earlier, value)
            )
            merged[key] = earlier + value if both_numbers else value  # type: ignore[operator]
    return dict(sorted(merged.items()))


def write(reports: Path, outcomes: list[DrillOutcome], *, mode: str, machine: str) -> list[Path]:
    reports.mkdir(parents=True, exist_ok=True)
    figures = merged_figures(outcomes)
    document = {
        "mode": mode,
        "machine": machine,
        "passed": all(outcome.passed for outcome in outcomes),
        "figures": figures,
        "drills": [
            {
                "name": outcome.name,
                "passed": outcome.passed,
                "seconds": round(outcome.seconds, 1),
                "figures": outcome.figures,
                "failures": outcome.failures,
                "notes": outcome.notes,
            }
            for outcome in outcomes
        ],
    }
    json_path = reports / "drills.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path = reports / "drills.md"
    md_path.write_text(markdown(outcomes, figures, mode=mode, machine=machine))
    return [json_path, md_path]


def markdown(
    outcomes: list[DrillOutcome], figures: dict[str, Figure], *, mode: str, machine: str
) -> str:
    lines = [
        f"# Drills ({mode} run)",
        "",
        f"Machine: {machine}.",
        "",
        "| drill | result | time | figures |",
        "|---|---|---:|---|",
    ]
    for outcome in outcomes:
        shown = ", ".join(f"`{key}` {value}" for key, value in outcome.figures.items())
        verdict = "passed" if outcome.passed else "**FAILED**"
        lines.append(f"| {outcome.name} | {verdict} | {outcome.seconds:.0f} s | {shown} |")
    lines += ["", "## All figures", "", "| key | value |", "|---|---:|"]
    lines += [f"| `{key}` | {value} |" for key, value in figures.items()]
    for outcome in outcomes:
        if outcome.failures or outcome.notes:
            lines += ["", f"## {outcome.name}", ""]
            lines += [f"- FAILED: {failure}" for failure in outcome.failures]
            lines += [f"- {note}" for note in outcome.notes]
    return "\n".join(lines) + "\n"
