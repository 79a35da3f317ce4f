"""Start the server process: load the model, print the address, serve until Ctrl-C."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from indexer.errors import UsageError
from indexer.settings import DEFAULT_HOST, DEFAULT_PORT
from retrieval.serve.hosts import allowed_hosts as hosts_allowed
from retrieval.serve.security import DEFAULT_MAX_UPLOAD, check_bind, clear_text_warning
from retrieval.serve.throttle import LoginThrottle


def checked_tls(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """The certificate and key files, checked to load together; None for plain HTTP."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together: give both files, or neither.")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise UsageError(f"{flag}: no such file: {path}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"--tls-cert {cert} with --tls-key {key} cannot be used: {exc} "
            "(both PEM files; the key unencrypted and matching the certificate)."
        ) from None
    return cert, key


def serve(
    index_dir: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    cors: str | None = None,
    allowed_hosts: Sequence[str] = (),
    tls_cert: str | None = None,
    tls_key: str | None = None,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    login_throttle: LoginThrottle | None = None,
    clip_model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    watch: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Serve ``index_dir`` on ``host:port`` until interrupted (uvicorn handles the signals).

    ``watch`` folders are indexed as they change, on a background thread.
    """
    import uvicorn

    from retrieval.serve.app import create_app

    check_bind(host, token)
    tls = checked_tls(tls_cert, tls_key)
    hosts = hosts_allowed(host, allowed_hosts)
    app = create_app(
        index_dir,
        clip_model=clip_model,
        device=device,
        precision=precision,
        backend=backend,
        token=token,
        cors=cors,
        max_upload=max_upload,
        host=host,
        allowed_hosts=allowed_hosts,
        login_throttle=login_throttle,
        watch=watch,
    )
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if tls else "http"
    print(
        f"objsearch serves {os.path.abspath(index_dir)} at {scheme}://{shown}:{port}/", flush=True
    )
    print(f"Answers requests for: {', '.join(hosts)}", file=sys.stderr, flush=True)
    warning = clear_text_warning(host, tls is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if watch:
        folders = ", ".join(os.path.abspath(f) for f in watch)
        print(f"Watching {folders}: changes are indexed as they happen.", file=sys.stderr)
    print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    print("Stopped.", file=sys.stderr, flush=True)
