"""The `microshop` command: `microshop render shop.yaml` prints what the operator would apply."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import yaml

from microshop_operator.builders import build_children, build_generated_secrets
from microshop_operator.spec import InvalidSpec


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (config files, PEM keys); no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_all(objects: Iterable[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML stream, keys in the order the builders wrote them."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def render(shop: dict[str, Any], *, with_secrets: bool = False) -> list[dict[str, Any]]:
    """The Shop's generated Secrets (redacted unless asked) followed by every other child."""
    return build_generated_secrets(shop, generate=with_secrets) + build_children(shop)


def _load_shops(stream: TextIO, namespace: str | None) -> list[dict[str, Any]]:
    shops = [document for document in yaml.safe_load_all(stream) if document]
    for shop in shops:
        if not isinstance(shop, dict):
            raise InvalidSpec("expected a Shop object")
        if namespace is not None:
            shop.setdefault("metadata", {})["namespace"] = namespace
    return shops


RENDER_HELP = (
    "print every object the operator would apply for the Shop(s) in FILE on a cluster that "
    "serves every kind they use: a ServiceMonitor is printed even though, where the Prometheus "
    "operator's CRD is missing, the operator skips it and says so in the Shop's status"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microshop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render_cmd = commands.add_parser("render", help=RENDER_HELP, description=RENDER_HELP)
    render_cmd.add_argument("file", help="a YAML file with one or more Shops, or - for stdin")
    render_cmd.add_argument(
        "-n", "--namespace", help="namespace of the Shop (default: its own, else 'default')"
    )
    render_cmd.add_argument(
        "--with-secrets",
        action="store_true",
        help="generate real passwords and keys instead of placeholders (the operator generates "
        "its own; these would not match a running Shop's)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.file == "-":
            shops = _load_shops(sys.stdin, arguments.namespace)
        else:
            with open(arguments.file, encoding="utf-8") as stream:
                shops = _load_shops(stream, arguments.namespace)
        objects = [
            obj for shop in shops for obj in render(shop, with_secrets=arguments.with_secrets)
        ]
    except (InvalidSpec, OSError, yaml.YAMLError) as error:
        print(f"microshop: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(dump_all(objects))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
