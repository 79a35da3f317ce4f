"""Start the server process: load the model, print the address, serve until Ctrl-C."""

from __future__ import annotations

import os
import sys

from indexer.settings import DEFAULT_HOST, DEFAULT_PORT
from retrieval.serve.security import DEFAULT_MAX_UPLOAD, check_bind


def serve(
    index_dir: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    cors: str | None = None,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    clip_model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
) -> None:
    """Serve ``index_dir`` on ``host:port`` until interrupted (uvicorn handles the signals)."""
    import uvicorn

    from retrieval.serve.app import create_app

    check_bind(host, token)
    app = create_app(
        index_dir,
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
        token=token,
        cors=cors,
        max_upload=max_upload,
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"objsearch serves {os.path.abspath(index_dir)} at http://{shown}:{port}/", flush=True)
    print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    print("Stopped.", file=sys.stderr, flush=True)
