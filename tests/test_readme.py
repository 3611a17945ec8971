"""The README's tables come from the registries, so they claim only what the suite tests."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_method_and_task_tables_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_first_screen_gives_the_two_commands_ci_runs():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash setup.sh" in first_screen and "bash setup.sh" in ci
    assert ".venv/bin/python -m pytest" in first_screen and ".venv/bin/python -m pytest" in ci
