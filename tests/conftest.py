"""Every test runs offline with its own runs folder; built-in models are cached once per session."""
import os

import pytest


@pytest.fixture(scope="session")
def _model_cache(tmp_path_factory):
    # a persistent cache (CI sets FTKIT_CACHE) saves rebuilding the tiny models
    return os.environ.get("FTKIT_CACHE") or str(tmp_path_factory.mktemp("ftkit-cache"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, _model_cache):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FTKIT_RUNS_DIR", str(runs))
    monkeypatch.setenv("FTKIT_CACHE", _model_cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return runs


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One real Slurm (munge, slurmctld, slurmd on 127.0.0.1) for every test that needs it (tests/_slurm.py)."""
    from _slurm import start_slurm, stop_slurm

    tmp = tmp_path_factory.mktemp("slurm")
    services = start_slurm(tmp)
    yield services
    stop_slurm(tmp)
