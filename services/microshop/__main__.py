"""`python -m microshop <service>|standalone|demo` (also the image's `microshop-service`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from microshop import SERVICES


def _serve_one(service: str) -> None:
    import importlib

    import uvicorn

    from microshop.platform.logs import configure_logging

    settings_module = importlib.import_module(f"microshop.{service}.settings")
    settings_class = getattr(settings_module, f"{service.capitalize()}Settings")
    settings = settings_class()
    configure_logging(service, settings.log_level, settings.log_format)
    app_module = importlib.import_module(f"microshop.{service}.app")
    if service == "gateway":
        from microshop.platform.runtime import token_verifier

        app = app_module.create_app(settings, token_verifier(settings))
    else:
        app = app_module.create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microshop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for service in SERVICES:
        sub.add_parser(service, help=f"run the {service} service (configured by environment)")
    standalone = sub.add_parser("standalone", help="all services in one process, no servers")
    standalone.add_argument("--data-dir", type=Path, default=Path(".data"))
    standalone.add_argument("--port", type=int, default=8080, help="gateway port; services +1..+4")
    sub.add_parser("demo", help="run a scripted session against a fresh standalone shop")
    args = parser.parse_args(argv)

    if args.command in SERVICES:
        _serve_one(args.command)
        return 0
    if args.command == "standalone":
        from microshop.platform.logs import configure_logging
        from microshop.standalone import Ports, StandaloneShop

        configure_logging("standalone", "WARNING", "text")
        asyncio.run(StandaloneShop(args.data_dir, Ports.default(args.port)).serve_forever())
        return 0
    from microshop.demo import main as demo_main
    from microshop.platform.logs import configure_logging

    configure_logging("demo", "WARNING", "text")
    return demo_main()


if __name__ == "__main__":
    sys.exit(main())
