"""Ports for the servers the tests start, chosen so that no two can collide: a server in this process binds
its own socket, a URL where nothing may answer keeps its port bound without listening, and a port for a
server process is handed out once per session and counts only once that process itself listens on it."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port of 127.0.0.1, free now and not handed out before in this session, for a server process.
    Another program may still take it before the server binds it: check with `listens_on`."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def bound_socket() -> socket.socket:
    """A socket bound to a port of 127.0.0.1 the kernel chose, for a server in this process to listen on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def refused_url() -> Iterator[str]:
    """http://127.0.0.1:PORT where every connection is refused while the block runs: this process keeps
    the port bound without listening, so no server can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` or one of its descendants listens on TCP `port` (and not another program
    that took the port first)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False


def port_taken(output: str, port: int) -> bool:
    """Whether a server's output says it could not bind `port` because something else holds it."""
    return "address already in use" in output.lower() or (f"port {port}" in output and "is in use" in output)
