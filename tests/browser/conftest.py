"""Jupyter servers (JupyterLab, Notebook 7, Voila, a bare jupyter_server) on 127.0.0.1 with a token,
driven by Debian's Chromium through Playwright.

Screenshots land in ``test-artifacts/`` (ignored by git) for a person to look at; each frontend's
timing line is printed with the run's other figures at its end (and kept in ``test-artifacts/figures.txt``).
Without Chromium the browser tests are skipped on a developer's machine and
fail in CI (``CI`` set), where ``.ci/run`` installs it.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from lab import ARTIFACTS, CURRENT, RECORDER, Lab

CHROMIUM = "/usr/bin/chromium"
SERVED: list[Lab] = []  # the servers running now
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"browser tests need {CHROMIUM}: apt-get install -y chromium")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _current_test(request):
    """``lab.record_timing`` reports its line as a figure of the test running now."""
    CURRENT.append(request.node)
    yield
    CURRENT.remove(request.node)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(app: str, root, settings, base, port: int, token: str, args: tuple) -> list[str]:
    if app == "voila":  # Voila serves the notebooks of root_dir under /voila/render/, code hidden
        return [sys.executable, "-m", "voila", str(root), "--no-browser", "--Voila.ip=127.0.0.1",
                f"--Voila.port={port}", f"--token={token}", "--show_tracebacks=True", *args]
    cmd = [
        sys.executable, "-m", app, "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    klass = {"jupyterlab": "LabApp", "notebook": "JupyterNotebookApp"}.get(app)
    if klass:
        cmd += [f"--{klass}.user_settings_dir={settings}", f"--{klass}.workspaces_dir={base / 'workspaces'}",
                f"--{klass}.expose_app_in_browser=True"]
    return cmd + list(args)


@contextlib.contextmanager
def serve_lab(base, disabled_extensions: tuple = (), app: str = "jupyterlab", args: tuple = ()):
    """A Jupyter server in ``base``; ``app``: ``"jupyterlab"``, ``"notebook"`` (Notebook 7, the same
    server with its own pages), ``"voila"`` or ``"jupyter_server"`` (no pages: kernels and REST only);
    ``disabled_extensions``: lab extensions the page must not load; ``args``: more command-line options."""
    root, settings, runtime, config = (base / d for d in ("root", "settings", "runtime", "config"))
    for d in (root, settings, runtime, config):
        d.mkdir()
    notify = settings / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    if disabled_extensions:
        (config / "labconfig").mkdir()
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {name: True for name in disabled_extensions}}))
    port, token, runs = free_port(), secrets.token_hex(16), base / "runs"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime),
           "FTKIT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    ready = f"http://127.0.0.1:{port}/" + ("voila/tree" if app == "voila" else "api/status") + f"?token={token}"
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(_command(app, root, settings, base, port, token, args), cwd=root, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(ready, timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{app} did not start:\n" + (base / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        served = Lab(root, port, token, runs, base / "server.log")
        SERVED.append(served)
        try:
            yield served
        finally:
            SERVED.remove(served)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("lab")) as served:
        yield served


@pytest.fixture(scope="module", autouse=True)
def _kernels_shut_down_after_each_module():
    """The kernels a test module started on a server that outlives it are shut down after it: kernels
    left holding dashboards and models slow the next module's kernel starts on a 2-core machine."""
    yield
    for served in list(SERVED):
        with contextlib.suppress(Exception):
            served.shutdown_kernels()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def recorded_page(browser):
    """A fresh page (its own context) carrying ``lab.RECORDER``, closed on exit."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(RECORDER)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"))
    except Exception:
        pass
    context.close()
