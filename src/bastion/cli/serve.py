"""``bastion serve``: the inference gateway on uvicorn (loopback by default, optional mTLS)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from bastion.cli.groups import app


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message and the record's ``event`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            out.update(event)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    for name in ("bastion", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = [handler]
        lg.setLevel(level)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the gateway logs each request itself


def app_factory() -> Any:
    """Uvicorn factory (``--workers N`` imports this in every worker process)."""
    from bastion.gateway.app import create_app
    from bastion.gateway.config import load_config

    configure_json_logging()
    # Background threads (audit writer, cache refreshes, detectors' hand-off) hand the GIL back to the event
    # loop after 1 ms instead of 5 ms: a request never waits long behind bookkeeping.
    sys.setswitchinterval(0.001)
    app = create_app(load_config(), apply_migrations=os.environ.get("BASTION_GATEWAY_MIGRATED") != "1")
    config_path = os.environ.get("BASTION_GATEWAY_CONFIG")
    if config_path:  # a `monitoring:` section in bastion.yaml turns on detectors, alerts and playbooks
        import yaml

        from bastion.monitor.config import load_monitor_config
        from bastion.monitor.service import attach_monitoring

        raw = yaml.safe_load(Path(config_path).read_text()) or {}
        if isinstance(raw, dict) and "monitoring" in raw:
            attach_monitoring(app.state.service, load_monitor_config(config_path))
    return app


def port_free(host: str, port: int) -> None:
    """Refuse a busy address with one clear line (uvicorn would exit 1 with the reason buried in a log)."""
    import errno
    import socket

    from bastion.core.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "busy"
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"{host}:{port} is already in use (another `bastion serve`?): stop it or pass "
                                  "--port N") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@app.command("serve")
def serve(
    config: Annotated[Path | None, typer.Option("--config", help="Gateway config (bastion.yaml).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="API processes (share DB + Redis).")] = 1,
    ssl_certfile: Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    ssl_ca_certs: Annotated[Path | None, typer.Option(
        "--ssl-ca-certs", help="CA bundle: clients must present a certificate it signed (mTLS).")] = None,
) -> None:
    """Serve registered models: auth, validation, budgets, sandbox, output policy, audit on by default."""
    import ssl

    import uvicorn

    from bastion.core.errors import ConfigError
    from bastion.gateway.config import load_config
    from bastion.store.db import upgrade

    if config is not None:
        os.environ["BASTION_GATEWAY_CONFIG"] = str(config.resolve())
    cfg = load_config()
    if cfg.db_url:
        os.environ["BASTION_DB_URL"] = cfg.db_url
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    if ssl_ca_certs is not None and ssl_certfile is None:
        raise ConfigError("--ssl-ca-certs (mTLS) needs --ssl-certfile and --ssl-keyfile")
    port_free(host or cfg.host, port or cfg.port)
    upgrade(cfg.db_url)
    os.environ["BASTION_GATEWAY_MIGRATED"] = "1"
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import shutil

        from bastion.gateway.config import gateway_home

        prom = gateway_home() / f"prometheus-{os.getpid()}"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)  # /metrics merges every worker
    configure_json_logging()
    kwargs: dict[str, Any] = {}
    if ssl_certfile is not None:
        kwargs.update(ssl_certfile=str(ssl_certfile), ssl_keyfile=str(ssl_keyfile))
    if ssl_ca_certs is not None:
        kwargs.update(ssl_ca_certs=str(ssl_ca_certs), ssl_cert_reqs=ssl.CERT_REQUIRED)
    # uvloop + httptools (gateway extra): the event loop and HTTP parser in C. X-Forwarded-For is not
    # trusted: the source of a request (rate of refusals per source, audit) is the peer address.
    uvicorn.run("bastion.cli.serve:app_factory", factory=True, host=host or cfg.host, port=port or cfg.port,
                workers=workers, log_config=None, access_log=False, loop="uvloop", http="httptools",
                proxy_headers=False, **kwargs)
