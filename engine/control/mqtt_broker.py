"""The embedded MQTT broker (amqtt), started when `[mqtt]` names no broker: zero setup.

It listens on loopback by default (`embedded_host`), on `embedded_port` (0: a free port, which
`EmbeddedBroker.port` then says). Two amqtt plugins give it the rules a mosquitto setup gets
from its password and ACL files (README: MQTT):

- `SharedLogin`: with `[mqtt] username`/`password` set, every client must log in with them
  (bandmate too); without, anyone who can reach the port may connect (loopback: this machine).
- `OwnSubtree`: a client may publish only under `{prefix}/in/{its client id}/`, as mosquitto's
  `pattern write bandmate/in/%c/#` says, so the per-client rate limit holds; only bandmate's
  own client id may publish the state and replies. Everyone may subscribe to anything.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from dataclasses import dataclass

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin


class SharedLogin(BaseAuthPlugin):
    """Every client logs in with the one username and password (none set: anyone)."""

    @dataclass
    class Config:
        username: str = ""
        password: str = ""

    async def authenticate(self, *, session=None) -> bool:
        if not self.config.username:
            return True
        if session is None or session.username is None:
            return False
        return hmac.compare_digest(str(session.username), self.config.username) and \
            hmac.compare_digest(str(session.password or ""), self.config.password)


class OwnSubtree(BaseTopicPlugin):
    """Publishing: bandmate anywhere under the prefix, any other client only under
    `{prefix}/in/{client id}/`. Subscribing and receiving: anything."""

    @dataclass
    class Config:
        prefix: str = "bandmate"
        bridge_id: str = "bandmate"

    async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool:
        if action != Action.PUBLISH:
            return True
        if session is None or topic is None:
            return False
        if session.client_id == self.config.bridge_id:
            return True
        return topic.startswith(f"{self.config.prefix}/in/{session.client_id}/")


class _Snapshots(dict):
    """amqtt 0.12's broadcast loop iterates its subscription table across awaits (the topic
    filter plugin's check), so a client subscribing meanwhile raised "dictionary changed size
    during iteration" inside the broker; iterating this table walks a snapshot instead."""

    def items(self):
        return list(super().items())

    def __iter__(self):
        return iter(list(super().keys()))


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker on `host`:`port` (0: a free one) with the rules above."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, prefix: str = "bandmate",
                 bridge_id: str = "bandmate", username: str = "", password: str = ""):
        self.host = host
        self.port = int(port) or free_port(host)
        self.config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self.port}"}},
            "plugins": {
                f"{__name__}.SharedLogin": {"username": username, "password": password},
                f"{__name__}.OwnSubtree": {"prefix": prefix, "bridge_id": bridge_id},
            },
        }
        self.broker: Broker | None = None

    async def start(self) -> "EmbeddedBroker":
        for name in ("amqtt", "transitions"):     # its per-packet chatter
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self.broker = Broker(self.config)
        self.broker._subscriptions = _Snapshots(self.broker._subscriptions)
        await self.broker.start()
        return self

    async def stop(self) -> None:
        if self.broker is not None:
            broker, self.broker = self.broker, None
            await asyncio.sleep(0.05)       # what was just broadcast is written out
            await broker.shutdown()
