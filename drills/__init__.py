"""Reliability and security drills against the real prod stack and real SSH test hosts.

`python -m drills [--quick]` (or `nox -s drills`) runs every drill in `drills.catalog`,
writes reports/drills.json and reports/drills.md, and exits 1 when any drill failed.
"""
