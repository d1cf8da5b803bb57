"""Retention keeps what it promises, for any history of backups (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicq_ops.backup.manifest import Manifest
from civicq_ops.backup.retention import RetentionPolicy, plan_retention

START = datetime(2026, 1, 1, tzinfo=UTC)


def backup(i: int, when: datetime, verified: bool = False, pinned: str | None = None) -> Manifest:
    return Manifest(id=f"b{i}", target="t", database="d", format="custom", started_at=when.isoformat(),
                    finished_at=when.isoformat(), duration_s=1.0, server_version="18", pg_dump_version="18.6",
                    system_identifier=None, pinned=pinned,
                    verification={"ok": True, "level": "read", "at": when.isoformat()} if verified else None)


histories = st.lists(st.tuples(st.integers(0, 400 * 24), st.booleans(), st.booleans()), min_size=1, max_size=60)
policies = st.builds(RetentionPolicy, keep_last=st.integers(1, 10), keep_daily=st.integers(0, 10),
                     keep_weekly=st.integers(0, 6), keep_monthly=st.integers(0, 12))


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(histories, policies)
def test_cleanup_never_deletes_the_newest_nor_the_last_verified(history, policy):
    backups = [backup(i, START + timedelta(hours=h), verified, "kept" if pinned and i % 7 == 0 else None)
               for i, (h, verified, pinned) in enumerate(history)]
    decisions = {d.manifest.id: d for d in plan_retention(backups, policy)}
    newest = max(backups, key=lambda m: m.finished_at)
    assert decisions[newest.id].keep
    verified = [m for m in backups if m.verified]
    if verified:
        assert any(decisions[m.id].keep for m in verified)
        assert decisions[max(verified, key=lambda m: m.finished_at).id].keep
    assert all(decisions[m.id].keep for m in backups if m.pinned)
    assert all(d.reasons for d in decisions.values())


def test_daily_weekly_monthly_keep_one_per_period():
    backups = [backup(i, START + timedelta(hours=12 * i)) for i in range(120)]  # two a day for 60 days
    policy = RetentionPolicy(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=2)
    kept = {d.manifest.id: d.reasons for d in plan_retention(backups, policy) if d.keep}
    # Newest two (1 March 12:00 and 00:00); the newest of 28 and 27 February; the newest of ISO week 8
    # (22 February, as week 9 runs to Sunday 1 March); February's newest is already kept as a daily.
    assert set(kept) == {"b119", "b118", "b117", "b115", "b105"}
    assert kept["b117"] == ["daily 2026-02-28", "monthly 2026-02"]
