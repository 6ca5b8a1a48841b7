"""`python -m microshop <service>|standalone|demo|dead-letters` (also the image's
`microshop-service`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from microshop.registry import GATEWAY, NAMES, service


def _serve_one(name: str) -> None:
    from pydantic import ValidationError

    from microshop.platform.logs import configure_logging
    from microshop.platform.server import serve as serve_with_limits
    from microshop.platform.server import serve_metrics_in_background

    entry = service(name)
    try:
        settings = entry.settings_class()()
    except ValidationError as exc:
        # pydantic's own text quotes the values, and a URL or a key is a secret: name the
        # variables and what is wrong with them, never what they hold.
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"{name}: configuration error: {where}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(name, settings.log_level, settings.log_format, settings.model_dump().values())
    app = entry.create_app(settings)
    if entry is GATEWAY:
        from microshop.gateway import serve

        # The gateway has its own HTTP server (gateway/server.py); the others run on uvicorn
        # with platform/server.py's limits and a metrics port.
        serve_metrics_in_background(app, settings)
        serve.run(app)
        return
    serve_with_limits(app, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microshop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in NAMES:
        sub.add_parser(name, help=f"run the {name} service (configured by environment)")
    standalone = sub.add_parser("standalone", help="all services in one process, no servers")
    standalone.add_argument("--data-dir", type=Path, default=Path(".data"))
    standalone.add_argument(
        "--port", type=int, default=8080, help="gateway port; each service at its offset above it"
    )
    sub.add_parser("demo", help="run a scripted session against a fresh standalone shop")
    from microshop import deadletters

    deadletters.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "dead-letters":
        return deadletters.main(args)

    if args.command in NAMES:
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
