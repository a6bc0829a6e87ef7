"""The daemon's state database stays small for years: past its bound, a job's oldest runs go,
but never the newest good backup, which the RPO is counted from."""

from __future__ import annotations

from pathlib import Path

from liferaft.ops.jobstate import JobState


def test_old_runs_go_and_the_newest_good_backup_stays(tmp_path: Path) -> None:
    state = JobState(tmp_path / "state.db", keep_runs=3)
    try:
        results = ["ok", "ok", *["failed"] * 8]
        ids = []
        for result in results:
            ids.append(state.start("disk", "backup", None))
            state.finish(ids[-1], result, 0 if result == "ok" else 10, "log")
        other = state.start("disk", "verify", None)
        state.finish(other, "ok", 0, "log")
        kept = [r.id for r in state.runs("disk", "backup")]
        assert sorted(kept) == [ids[1], *ids[-3:]]  # the newest three, and the newest good one
        ok = state.last("disk", "backup", "ok")
        assert ok is not None and ok.id == ids[1]
        assert [r.id for r in state.runs("disk", "verify")] == [other]  # each job and kind on its own
        for _ in range(4):  # with nothing good at all, only the bound holds
            state.finish(state.start("disk", "drill", None), "failed", 72, "log")
        assert len(state.runs("disk", "drill")) == 3
    finally:
        state.close()
