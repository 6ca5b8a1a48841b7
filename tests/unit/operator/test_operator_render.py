"""`microshop render`: what a review or GitOps diff sees is exactly what the operator applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from microshop_operator.builders import build_children, build_generated_secrets
from microshop_operator.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "examples"
Obj = dict[str, Any]


@pytest.mark.parametrize("name", ["shop-minimal.yaml", "shop.yaml"])
def test_render_prints_exactly_the_builders_output(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(EXAMPLES / name), "--namespace", "prod"]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    shop = yaml.safe_load((EXAMPLES / name).read_text())
    shop["metadata"]["namespace"] = "prod"
    secrets = build_generated_secrets(shop, generate=False)
    assert printed == secrets + build_children(shop)
    assert printed[len(secrets) :] == build_children(shop)


def test_render_redacts_secrets_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    shop = str(EXAMPLES / "shop-minimal.yaml")
    assert main(["render", shop]) == 0
    redacted = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "Secret"]
    assert all("REDACTED" in d["stringData"]["password"] for d in redacted[1:])
    assert main(["render", shop, "--with-secrets"]) == 0
    generated = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "Secret"]
    assert generated[0]["stringData"]["public-key.pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert not any("REDACTED" in str(d) for d in generated)


def test_render_uses_the_shops_namespace_or_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(
        "apiVersion: microshop.dev/v1alpha1\nkind: Shop\nmetadata: {name: a, namespace: team}\n"
        "---\napiVersion: microshop.dev/v1alpha1\nkind: Shop\nmetadata: {name: b}\n"
    )
    assert main(["render", str(path)]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    namespaces = {d["metadata"]["labels"]["app.kubernetes.io/instance"]: set() for d in documents}
    for document in documents:
        namespaces[document["metadata"]["labels"]["app.kubernetes.io/instance"]].add(
            document["metadata"]["namespace"]
        )
    assert namespaces == {"a": {"team"}, "b": {"default"}}


def test_render_refuses_an_invalid_shop_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: microshop.dev/v1alpha1\nkind: Shop\nmetadata: {name: bad}\n"
        "spec: {databases: {orders: {external: {}}}}\n"
    )
    assert main(["render", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "spec.databases.orders: an external database needs external.secretRef" in captured.err


def test_the_console_script_renders_from_stdin() -> None:
    """The installed `microshop` entry point, as a user runs it in a pipeline."""
    script = Path(sys.executable).with_name("microshop")
    shop = (EXAMPLES / "shop-minimal.yaml").read_text()
    done = subprocess.run(
        [str(script), "render", "-"], input=shop, capture_output=True, text=True, check=True
    )
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout)]
    assert kinds.count("Deployment") == 5 and kinds.count("StatefulSet") == 5
