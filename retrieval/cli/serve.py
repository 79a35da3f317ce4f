"""The ``serve`` command: a long-running HTTP server (JSON API and web page) over one index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.settings import (
    DEFAULT_HOST,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    ENV_TOKEN,
    LOGIN_DELAY_S,
    LOGIN_LOCKOUT_S,
)

from .app import BackendOpt, ClipOpt, DeviceOpt, IndexDir, PrecisionOpt, friendly


@friendly
def serve(
    index_dir: IndexDir,
    host: Annotated[
        str, typer.Option(help="Address to bind; any non-loopback address needs --token.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(envvar=ENV_TOKEN, help="Require this token on every API call."),
    ] = None,
    cors: Annotated[
        str | None, typer.Option("--cors", help="Allow this browser origin (CORS).")
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Also answer requests for this host name (repeatable; e.g. the name a "
            "reverse proxy serves). Loopback names and the bound address are always allowed.",
        ),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert.")
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload accepted, in MB.")
    ] = DEFAULT_MAX_UPLOAD_MB,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
    watch: Annotated[
        list[Path] | None,
        typer.Option(
            "--watch",
            help="Index this folder's new, changed, moved and deleted photos as they happen "
            "(repeatable), with the index's models; the page's status line shows progress.",
            show_default=False,
        ),
    ] = None,
    # Test hooks (hidden): a failed login's wait and the lockout's length, in seconds.
    login_delay_s: Annotated[float, typer.Option(hidden=True)] = LOGIN_DELAY_S,
    login_lockout_s: Annotated[float, typer.Option(hidden=True)] = LOGIN_LOCKOUT_S,
) -> None:
    """Serve INDEX over HTTP: a JSON API under /api/v1 and a web page at /."""
    from retrieval.serve.run import serve as run_server
    from retrieval.serve.throttle import LoginThrottle

    run_server(
        index_dir,
        host=host,
        port=port,
        token=token,
        cors=cors,
        allowed_hosts=allowed_host or (),
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_upload=int(max_upload_mb * 1_000_000),
        login_throttle=LoginThrottle(delay_s=login_delay_s, lockout_s=login_lockout_s),
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
        watch=watch or (),
    )
