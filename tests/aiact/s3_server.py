"""A throwaway S3 server on 127.0.0.1 for storage tests.

Preferred: a real Ceph RADOS Gateway (Debian's `radosgw`, `ceph-mon`, `ceph-osd`, installed by
hack/setup-services.sh): one monitor, one memory-backed OSD and radosgw, ~10 s to start. Settings
it needs (see shared notes): ``ms * mode = crc secure``, a monitor map with v2 and v1 addresses,
``ms bind ipv6 = false``. There is no fallback: a machine without Ceph fails these tests, so a
missing install cannot pass unnoticed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "aiact-test", "aiact-test-secret"


@dataclass
class S3Server:
    """A running S3 endpoint and how to stop it."""

    kind: str
    endpoint: str
    pid_files: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the daemons this fixture started (by their pid files)."""
        for pid_file in self.pid_files:
            if pid_file.exists():
                subprocess.run(["kill", pid_file.read_text().strip()], check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ceph_conf(root: Path, fsid: str, mon_addr: str) -> str:
    return f"""[global]
fsid = {fsid}
mon host = {mon_addr}
public addr = 127.0.0.1
ms bind ipv6 = false
ms cluster mode = crc secure
ms service mode = crc secure
ms client mode = crc secure
ms mon cluster mode = crc secure
ms mon service mode = crc secure
ms mon client mode = crc secure
keyring = {root}/keyring
run dir = {root}/run
log file = {root}/log/$name.log
admin socket = {root}/run/$name.asok
pid file = {root}/run/$name.pid
mon data = {root}/mon/$name
osd data = {root}/osd/$name
osd objectstore = memstore
memstore device bytes = 536870912
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
[osd]
keyring = {root}/osd/$name/keyring
"""


def start_rgw(root: Path, timeout: float = 60.0) -> S3Server:
    """Start monitor, OSD and radosgw under `root`; return once S3 answers."""
    for name in ("mon", "osd", "run", "log"):
        (root / name).mkdir(parents=True, exist_ok=True)
    fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    mon_addr = f"[v2:127.0.0.1:{_free_port()},v1:127.0.0.1:{_free_port()}]"
    rgw_port = _free_port()
    conf = root / "ceph.conf"
    conf.write_text(_ceph_conf(root, fsid, mon_addr))
    c = ["-c", str(conf)]

    def run(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()

    keyring = str(root / "keyring")
    run(
        "ceph-authtool",
        "--create-keyring",
        keyring,
        "--gen-key",
        "-n",
        "mon.",
        "--cap",
        "mon",
        "allow *",
    )
    run(
        "ceph-authtool",
        keyring,
        "--gen-key",
        "-n",
        "client.admin",
        "--cap",
        "mon",
        "allow *",
        "--cap",
        "osd",
        "allow *",
        "--cap",
        "mgr",
        "allow *",
    )
    run("monmaptool", "--create", "--addv", "a", mon_addr, "--fsid", fsid, str(root / "monmap"))
    run("ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(root / "monmap"), "--keyring", keyring)
    server = S3Server("Ceph RGW", f"127.0.0.1:{rgw_port}")
    server.pid_files.append(root / "run" / "mon.a.pid")
    run("ceph-mon", *c, "-i", "a")
    try:
        osd = run("ceph", *c, "osd", "new", osd_uuid)
        (root / "osd" / f"osd.{osd}").mkdir()
        run(
            "ceph-osd",
            *c,
            "-i",
            osd,
            "--mkfs",
            "--osd-uuid",
            osd_uuid,
            "--mkkey",
            "--no-mon-config",
        )
        run(
            "ceph",
            *c,
            "auth",
            "add",
            f"osd.{osd}",
            "osd",
            "allow *",
            "mon",
            "allow profile osd",
            "-i",
            str(root / "osd" / f"osd.{osd}" / "keyring"),
        )
        server.pid_files.append(root / "run" / f"osd.{osd}.pid")
        run("ceph-osd", *c, "-i", osd)
        rgw_key = run(
            "ceph",
            *c,
            "auth",
            "get-or-create",
            "client.rgw.a",
            "mon",
            "allow rw",
            "osd",
            "allow rwx",
        )
        with open(keyring, "a") as handle:
            handle.write("\n" + rgw_key + "\n")
        server.pid_files.append(root / "run" / "client.rgw.a.pid")
        run(
            "radosgw",
            *c,
            "-n",
            "client.rgw.a",
            "--rgw-frontends",
            f"beast endpoint=127.0.0.1:{rgw_port}",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{rgw_port}/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        run(
            "radosgw-admin",
            *c,
            "-n",
            "client.admin",
            "user",
            "create",
            "--uid",
            "aiact",
            "--display-name",
            "aiact",
            "--access-key",
            ACCESS_KEY,
            "--secret",
            SECRET_KEY,
        )
    except BaseException:
        server.stop()
        raise
    return server


def start_s3(root: Path) -> S3Server:
    """A real Ceph RGW; fails when its Debian packages are missing (hack/setup-services.sh)."""
    missing = [d for d in ("radosgw", "ceph-mon", "ceph-osd") if not shutil.which(d)]
    assert not missing, f"Ceph not installed ({missing}): run hack/setup-services.sh"
    return start_rgw(root)
