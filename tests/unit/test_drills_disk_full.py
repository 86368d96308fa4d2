"""The disk_full drill's verdict on the writes made while the volume is full."""

from __future__ import annotations

import yaml

from drills import disk_full
from drills.disk_full import full_write_verdict


def test_refusals_with_507_or_503_problems_keep_the_promise():
    assert full_write_verdict([201, 507, 507, 503], [False, True, True, True]) is None


def test_a_disk_that_never_filled_is_reported():
    assert "never full" in (full_write_verdict([201, 201], [False, False]) or "")


def test_other_statuses_are_refused():
    assert "[500]" in (full_write_verdict([507, 500], [True, True]) or "")


def test_a_success_after_a_refusal_is_reported():
    assert "succeeded after" in (full_write_verdict([507, 201], [True, False]) or "")


def test_refusals_must_be_problem_json():
    assert "not problem+json" in (full_write_verdict([507], [False]) or "")


def test_the_override_puts_app_data_on_a_small_tmpfs_owned_by_the_app():
    volume = yaml.safe_load(disk_full.OVERRIDE)["volumes"]["app_data"]
    assert volume["driver_opts"]["type"] == "tmpfs"
    assert f"size={disk_full.VOLUME_SIZE}" in volume["driver_opts"]["o"]
    assert "uid=10001" in volume["driver_opts"]["o"]
