"""A recovery target the server would reject after minutes of copying is refused before anything
is copied (exit 2): a time without a zone, before the backup ended, in the future; an LSN that is
not one; none or two targets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from civicq_ops.backup.physical import PitrOptions, check_recovery_target
from civicq_ops.core.errors import InputError

ENDED = "2026-12-01T20:00:00+00:00"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("options", "says"), [
    (PitrOptions(to_time="2026-12-01 22:00:00"), "has no time zone"),
    (PitrOptions(to_time="2026-12-01 19:59:59+00"), "before the backup ended"),
    (PitrOptions(to_time="2026-12-02 12:00:01+00"), "in the future"),
    (PitrOptions(to_time="yesterday evening"), "must be a time such as"),
    (PitrOptions(to_lsn="3000060"), "must be an LSN"),
    (PitrOptions(), "exactly one of"),
    (PitrOptions(to_time="2026-12-01 22:00:00+00", to_latest=True), "exactly one of"),
])
def test_a_target_recovery_cannot_use_is_refused_up_front(options, says):
    with pytest.raises(InputError, match=says):
        check_recovery_target(options, ENDED, now=NOW)


@pytest.mark.parametrize("options", [
    PitrOptions(to_time="2026-12-01 22:00:00+00"), PitrOptions(to_time="2026-12-01T23:30:00.5+01:00"),
    PitrOptions(to_lsn="0/3000060"), PitrOptions(to_lsn="1A/FF000028"), PitrOptions(to_latest=True),
])
def test_targets_after_the_backup_and_before_now_pass(options):
    check_recovery_target(options, ENDED, now=NOW)
