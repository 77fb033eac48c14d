"""Listening on a port: one check and one message for every server the tool starts (serve, preview,
smtp-capture), so a busy port is one line that says what to do, never a traceback from bind()."""

from __future__ import annotations

import socket

from .errors import ConfigError


def cannot_listen(host: str, port: int, error: OSError) -> ConfigError:
    return ConfigError(f"cannot listen on {host}:{port}: {error.strerror}; choose another with --port")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound and listening on host:port, for a server to take over: a client that connects as soon as
    the server says where it is waits in the backlog instead of being refused while the server starts."""
    listener = _bound(host, port)
    listener.listen(2048)
    return listener


def ensure_free(host: str, port: int) -> None:
    """Fail with a clear line when the port is taken (aiosmtpd would otherwise wait and say nothing)."""
    _bound(host, port).close()


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or one ConfigError line saying why not.

    It binds with SO_REUSEADDR, as the servers themselves do (uvicorn, aiosmtpd): connections of a server that
    was just killed linger in TIME_WAIT for a minute, and a bind without it would refuse the port that the
    real server can take at once, so a `Restart=` under systemd would fail for that minute."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    bound = socket.socket(family, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind((host, port))
    except OSError as error:
        bound.close()
        raise cannot_listen(host, port, error) from None
    return bound
