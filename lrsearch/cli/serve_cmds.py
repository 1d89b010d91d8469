"""``serve``: the REST service; and the service ``lrsearch demo --serve`` starts.

Heavy imports (the service, uvicorn, storage) happen inside the functions, so
that ``lrsearch worker`` never loads FastAPI.
"""

from __future__ import annotations

import logging
import socket
from typing import Annotated, Any
from urllib.parse import quote

import typer

from lrsearch.cli.client_cmds import _fail
from lrsearch.client._http import segment


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)


def _run_service(settings: Any, host: str, port: int, sock: socket.socket | None = None) -> None:
    import uvicorn

    from lrsearch.service import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if sock is None:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    config = uvicorn.Config(create_app(settings), log_level="info")
    uvicorn.Server(config).run(sockets=[sock])


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` now, for a service started later on this socket.

    ``lrsearch demo --serve`` calls it before training, so a taken port is
    reported at once rather than after minutes of work, and nothing can take
    the port in between. Not listening yet: connections are refused until the
    service starts.

    Raises:
        typer.Exit: The address cannot be bound (code 1, with the reason).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a port left in TIME_WAIT by an earlier run is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        _fail(f"cannot serve on {host}:{port} ({exc.strerror}); choose another with --port")
    return sock


def dashboard_link(base: str, study: str, read_key: str) -> str:
    """The dashboard's page of ``study``, with ``read_key`` in the fragment.

    The dashboard takes the key from the fragment, keeps it as if typed, and
    removes it from the address bar; browsers never send a fragment to the server.
    """
    return f"{base}/#/study/{segment(study)}?key={quote(read_key, safe='')}"


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the REST service on LRSEARCH_STORAGE (settings from LRSEARCH_* variables)."""
    from lrsearch.service import Settings

    _run_service(Settings(), host, port)


def serve_demo(
    *, url: str, study: str, host: str, port: int, sock: socket.socket | None = None
) -> None:
    """Serve the demo's storage with keys on; print a dashboard link that carries a read key."""
    from lrsearch import storage
    from lrsearch.service import API_PREFIX, Settings

    backend = storage.open_backend(url)
    try:
        _, read_key = storage.create_key(backend, scope="read")
    finally:
        backend.dispose()
    settings = Settings(storage=url, auth_disabled=False)
    # A wildcard address is not one a browser can open: link to this machine.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared
    base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    typer.echo(f"\ndashboard:      {dashboard_link(base, study, read_key)}")
    typer.echo(f"read key:       {read_key}   (the link above signs the browser in with it)")
    typer.echo(f"best schedules: {base}{API_PREFIX}/studies/{segment(study)}/schedules")
    typer.echo(f"API docs:       {base}/docs   (Ctrl-C stops the service)")
    _run_service(settings, host, port, sock)
