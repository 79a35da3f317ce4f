"""The ``serve`` command: a long-running HTTP server (JSON API and web page) over one index."""

from __future__ import annotations

from typing import Annotated

import typer

from indexer.settings import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, ENV_TOKEN

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
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload accepted, in MB.")
    ] = DEFAULT_MAX_UPLOAD_MB,
    clip_model: ClipOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Serve INDEX over HTTP: a JSON API under /api/v1 and a web page at /."""
    from retrieval.serve.run import serve as run_server

    run_server(
        index_dir,
        host=host,
        port=port,
        token=token,
        cors=cors,
        max_upload=int(max_upload_mb * 1_000_000),
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
    )
