"""The cluster rig: a RabbitMQ cluster of three nodes and a Redis master with a replica and three
sentinels, all started here on free ports with their data in a temporary directory, and stopped
by process group and node name: never the pre-started broker (rabbit@<host>, 5672) or Redis (6379).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as redis

from tests.faults.processes import Process, free_port, spawn, until

NODE_START_TIMEOUT = 120.0  # three Erlang VMs booting at once on two busy cores
REDIS_START_TIMEOUT = 30.0
CTL_TIMEOUT = 120.0
MASTER = "acbmaster"


def _script(name: str) -> str:
    """The broker's own script, not the distribution's wrapper that `su`s to the rabbitmq user
    (it would drop our HOME, so our cookie, and point rabbitmqctl at the pre-started node)."""
    direct = Path("/usr/lib/rabbitmq/bin") / name
    if direct.exists():
        return str(direct)
    return shutil.which(name) or name


@dataclass
class Node:
    """One RabbitMQ node of the rig."""

    name: str  # acb-<pid>-<n>@localhost
    port: int
    dist_port: int
    directory: Path
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


@dataclass
class RabbitCluster:
    """Three nodes, one cluster; `urls` lists them in order."""

    directory: Path
    size: int = 3
    cookie: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        home = self.directory / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        stem = f"acb-{os.getpid()}-{secrets.token_hex(2)}"
        for n in range(1, self.size + 1):
            node_dir = self.directory / f"node{n}"
            node_dir.mkdir(exist_ok=True)
            node = Node(f"{stem}-{n}@localhost", free_port(), free_port(), node_dir)
            self.nodes.append(node)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def _env(self, node: Node) -> dict[str, str]:
        config = node.directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "AUTOCALL_"))}
        return env | {
            "HOME": str(self.directory / "home"),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.directory / "log"),
            "RABBITMQ_PID_FILE": str(node.directory / "pid"),
            # our own files, not /etc/rabbitmq's (they name the pre-started node and its port)
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    async def ctl(
        self, node: Node, *args: str, timeout: float = CTL_TIMEOUT, tool: str = "rabbitmqctl"
    ) -> str:
        """rabbitmqctl against one of our nodes, always by name (-n) and with our cookie."""
        command = [_script(tool), "-n", node.name, "--erlang-cookie", self.cookie, *args]
        env = self._env(node)
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TimeoutError(f"{tool} {' '.join(args)} on {node.name}") from None
        if process.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} on {node.name}: {stderr.decode()}")
        return stdout.decode()

    async def queues(self, node: Node, *args: str) -> str:
        """rabbitmq-queues against one of our nodes."""
        return await self.ctl(node, *args, tool="rabbitmq-queues")

    async def start_node(self, node: Node) -> None:
        """Boot the node (its data directory kept from an earlier run, if any) and wait."""
        command = [_script("rabbitmq-server")]
        log = node.directory / "server.log"
        node.process = process = await spawn(node.name, command, self._env(node), log)

        async def booted() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"{node.name} exited with {process.returncode} while booting")
            try:  # refused at once while the VM has not registered its name yet
                await self.ctl(node, "await_startup", "--timeout", str(int(NODE_START_TIMEOUT)))
            except RuntimeError:
                return False
            return True

        await until(booted, NODE_START_TIMEOUT, f"{node.name} booted", every=0.5)

    async def start(self) -> float:
        """All nodes in parallel, then nodes 2.. join node 1: the seconds it took."""
        began = time.monotonic()
        await asyncio.gather(*(self.start_node(node) for node in self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:  # one at a time: concurrent joins race in mnesia
            await self.ctl(node, "stop_app")
            await self.ctl(node, "join_cluster", first.name)
            await self.ctl(node, "start_app")
        await self.ctl(first, "await_online_nodes", str(len(self.nodes)))
        return time.monotonic() - began

    async def kill(self, node: Node) -> None:
        """kill -9 the node: its script and its Erlang VM (one process group)."""
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        await node.process.kill()

    async def stop_node(self, node: Node) -> None:
        """A clean stop, as a rolling upgrade does it."""
        if node.process is None or node.process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.ctl(node, "stop", timeout=60)
        try:
            await asyncio.wait_for(node.process.process.wait(), 30)
        except TimeoutError:
            await self.kill(node)

    async def close(self) -> None:
        """Every node gone: by process group, then the data directories."""
        await asyncio.gather(*(self.kill(node) for node in self.nodes), return_exceptions=True)

    def logs(self) -> dict[str, str]:
        return {node.name: node.process.tail() for node in self.nodes if node.process}


@dataclass
class RedisServer:
    """One redis-server (master, replica or sentinel) of the rig."""

    name: str
    port: int
    directory: Path
    args: list[str]
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", *self.args]
        log = self.directory / f"{self.name}.log"
        self.process = await spawn(self.name, command, dict(os.environ), log)

        async def answers() -> bool:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            client = redis.Redis(port=self.port, socket_connect_timeout=1)
            try:
                return bool(await client.ping())
            except Exception:
                return False
            finally:
                await client.aclose()

        await until(answers, REDIS_START_TIMEOUT, f"{self.name} on port {self.port}", every=0.1)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()


def redis_server(name: str, directory: Path, *extra: str) -> RedisServer:
    """A data node: append-only file synced on every write, so a restart finds its data."""
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", *extra]
    return RedisServer(name, port, directory, args)


@dataclass
class RedisSentinels:
    """A master, one replica and three sentinels watching them."""

    directory: Path
    master: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    sentinels: list[RedisServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master = redis_server("redis-master", self.directory / "master")
        replicaof = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica = redis_server("redis-replica", self.directory / "replica", *replicaof)
        for n in range(1, 4):
            port = free_port()
            where = self.directory / f"sentinel{n}"
            where.mkdir(parents=True, exist_ok=True)
            conf = where / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {where}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            self.sentinels.append(
                RedisServer(f"sentinel-{n}", port, where, [str(conf), "--sentinel"])
            )

    def url(self, db: int = 0) -> str:
        """The store URL of contract §10 for this set."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/{db}"

    async def start(self) -> float:
        began = time.monotonic()
        await self.master.start()
        await asyncio.gather(self.replica.start(), *(s.start() for s in self.sentinels))
        await until(self._replicated, REDIS_START_TIMEOUT, "the replica in sync", every=0.1)
        return time.monotonic() - began

    async def _replicated(self) -> bool:
        client = redis.Redis(port=self.master.port)
        async with client:
            info = await client.info("replication")
        return int(info.get("connected_slaves", 0)) >= 1

    async def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers tells it."""
        for sentinel in self.sentinels:
            client = redis.Redis(port=sentinel.port, socket_timeout=1)
            with contextlib.suppress(Exception):
                async with client:
                    ask = ("SENTINEL", "get-master-addr-by-name", MASTER)
                    found = await client.execute_command(*ask)  # type: ignore[no-untyped-call]
                if found:
                    return int(found[1])
        return None

    def servers(self) -> list[RedisServer]:
        return [self.master, self.replica, *self.sentinels]

    async def close(self) -> None:
        await asyncio.gather(*(s.kill() for s in self.servers()), return_exceptions=True)

    def logs(self) -> dict[str, str]:
        return {s.name: s.process.tail() for s in self.servers() if s.process}
