"""sshd on 127.0.0.1 only, with a host key and a client key made for the test, and an ``ssh`` on PATH
that uses them (the machine's own ~/.ssh and sshd config are never touched). In CI (CI=true) missing
packages fail loudly: .ci/run installs them (apt-get install -y openssh-server pdsh)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def start_sshd(tmp: Path) -> dict:
    missing = [t for t in ("ssh", "ssh-keygen", "pdsh") if shutil.which(t) is None]
    if not Path("/usr/sbin/sshd").exists():
        missing.append("sshd")
    if missing:
        message = f"ssh tests need {', '.join(missing)}: apt-get install -y openssh-server pdsh"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    subprocess.run(["/usr/sbin/sshd", "-p", str(port), "-o", "ListenAddress=127.0.0.1",
                    "-o", f"HostKey={tmp / 'host_key'}", "-o", f"AuthorizedKeysFile={tmp / 'authorized_keys'}",
                    "-o", f"PidFile={tmp / 'sshd.pid'}", "-o", "PermitRootLogin=prohibit-password",
                    "-o", "StrictModes=no", "-o", "PasswordAuthentication=no"], check=True)
    config = tmp / "ssh_config"
    config.write_text(f"Host localhost 127.0.0.1\n  HostName 127.0.0.1\n  Port {port}\n"
                      f"  IdentityFile {tmp / 'client_key'}\n  StrictHostKeyChecking no\n"
                      "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ConnectTimeout 5\n")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {config} \"$@\"\n")
    wrapper.chmod(0o755)
    deadline = time.time() + 20
    while time.time() < deadline:
        if subprocess.run([str(wrapper), "localhost", "true"], capture_output=True).returncode == 0:
            return {"bin": bin_dir, "port": port, "tmp": tmp}
        time.sleep(0.3)
    stop_sshd(tmp)
    pytest.fail("sshd on 127.0.0.1 did not accept the test key", pytrace=False)


def stop_sshd(tmp: Path) -> None:
    try:
        os.kill(int((tmp / "sshd.pid").read_text().strip()), 15)
    except (OSError, ValueError):
        pass
