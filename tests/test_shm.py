"""Which of DeepSpeed's leftover all-reduce segments a run's end removes (ftkit.shm)."""
import os
import time

from ftkit import shm


def make(folder, port, rank, mtime=None):
    path = folder / f"{shm.PREFIX}_{os.getuid()}_127.0.0.1_{port}_{rank}"
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_rank_removes_its_own_segment_only(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SHM", tmp_path)
    mine, other, elsewhere = make(tmp_path, 29511, 0), make(tmp_path, 29511, 1), make(tmp_path, 29512, 0)
    assert shm.release("29511", 0) == [mine.name]
    assert not mine.exists() and other.exists() and elsewhere.exists()


def test_an_ended_run_removes_every_rank_but_not_a_newer_run_on_its_port(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SHM", tmp_path)
    now = time.time()
    old = [make(tmp_path, 29511, rank, mtime=now - 60) for rank in (0, 1)]
    newer = make(tmp_path, 29511, 2, mtime=now + 60)  # a run that took the port after this one ended
    elsewhere = make(tmp_path, 29512, 0, mtime=now - 60)
    assert sorted(shm.release_ended(29511)) == sorted(p.name for p in old)
    assert newer.exists() and elsewhere.exists()
    assert shm.release_ended(None) == [] and elsewhere.exists()
