"""Real MQTT brokers for tests and benchmarks (test code only).

`Mosquitto` runs the Debian mosquitto binary on a free loopback port with its own temporary
config, a password file made by mosquitto_passwd and an ACL file holding the README's rule
(`pattern write bandmate/in/%c/#`): each client writes only its own command subtree, bandmate
writes anywhere under `bandmate/`, everyone reads `bandmate/#`. It is always killed on exit.

`Listener` is an MQTT client that records every message it receives (`wait_for` with a timeout
names what it waited for).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiomqtt

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                         if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
USERS = {"bandmate": "band-secret", "alice": "alice-pw", "mallory": "mallory-pw"}
ACL = """\
# each client writes only its own command subtree; everyone reads the band's topics
pattern write bandmate/in/%c/#
pattern read bandmate/#
user bandmate
topic readwrite bandmate/#
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > end:
                raise AssertionError(f"nothing listens on port {port} after {timeout} s")
            time.sleep(0.02)


def make_certificates(folder: Path) -> Path:
    """A test CA (ca.crt) and a server certificate for 127.0.0.1 signed by it (server.crt,
    server.key), made with the openssl command; returns the CA's file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed")

    def run(*args):
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=bandmate test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.crt"


class Mosquitto:
    """mosquitto on 127.0.0.1:`port` (a free one by default); `kill()` and `start()` again keep
    the port (a broker restart)."""

    def __init__(self, folder: Path, port: int | None = None, tls: bool = False):
        if MOSQUITTO is None or MOSQUITTO_PASSWD is None:
            raise RuntimeError("mosquitto is not installed (Debian: mosquitto)")
        self.dir = Path(folder)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        pw = self.dir / "passwd"
        for i, (user, password) in enumerate(USERS.items()):
            subprocess.run([MOSQUITTO_PASSWD, *(["-c"] if i == 0 else []), "-b", str(pw), user,
                            password], check=True, capture_output=True, timeout=30)
        (self.dir / "acl").write_text(ACL)
        self.conf = self.dir / "mosquitto.conf"
        self.ca_file = make_certificates(self.dir) if tls else None
        tls_conf = (f"cafile {self.ca_file}\ncertfile {self.dir / 'server.crt'}\n"
                    f"keyfile {self.dir / 'server.key'}\n") if tls else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{tls_conf}allow_anonymous false\n"
                             f"password_file {pw}\nacl_file {self.dir / 'acl'}\n"
                             f"persistence false\nuser root\nlog_dest stderr\n"
                             f"log_type error\nlog_type warning\n")
        self.log = self.dir / "mosquitto.log"

    def start(self) -> "Mosquitto":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except AssertionError:
            self.kill()
            raise AssertionError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: the broker dies without a word to its clients."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


class Listener:
    """A client that subscribes to `topics` and records (topic, payload text, retained)."""

    def __init__(self, port: int, client_id: str, username: str | None = None,
                 password: str | None = None, topics=("bandmate/#",)):
        self.client = aiomqtt.Client("127.0.0.1", port, identifier=client_id, username=username,
                                     password=password, timeout=10.0)
        self.topics = topics
        self.got: list[tuple[str, str, bool]] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Listener":
        await asyncio.wait_for(self.client.__aenter__(), 10.0)
        for t in self.topics:
            await self.client.subscribe(t)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.client.__aexit__(None, None, None), 10.0)
        except (aiomqtt.MqttError, asyncio.TimeoutError):
            pass

    async def _read(self) -> None:
        async for m in self.client.messages:
            payload = m.payload.decode("utf-8", "replace") \
                if isinstance(m.payload, (bytes, bytearray)) else str(m.payload)
            self.got.append((str(m.topic), payload, bool(m.retain)))

    async def send(self, topic: str, payload, qos: int = 0) -> None:
        if not isinstance(payload, (str, bytes, bytearray)):
            payload = json.dumps(payload)
        await self.client.publish(topic, payload, qos=qos)

    def last(self, topic: str) -> str | None:
        for t, p, _ in reversed(self.got):
            if t == topic:
                return p
        return None

    def on(self, topic: str) -> list[str]:
        return [p for t, p, _ in self.got if t == topic]

    async def wait_for(self, pred, what: str, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while True:
            r = pred()
            if r:
                return r
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"last messages: {self.got[-5:]}")
            await asyncio.sleep(0.005)
