"""The generated install bundle and the chart's CRD copy stay in sync with their sources."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from tests.support.pss import assert_restricted
from tools.manifests import CHART_DIR, INSTALL_BUNDLE, KUBE_VERSION, install_bundle

ROOT = Path(__file__).resolve().parents[3]
SOURCE_CRD = ROOT / "crds" / "shop.yaml"


def test_install_bundle_is_what_make_manifests_generates() -> None:
    assert INSTALL_BUNDLE.read_text() == install_bundle(), "run `make manifests`"


def test_chart_crd_is_a_copy_of_crds_shop_yaml() -> None:
    assert SOURCE_CRD.exists(), "crds/shop.yaml is the CRD's source"
    copy = CHART_DIR / "crds" / "shop.yaml"
    assert copy.exists() and copy.read_text() == SOURCE_CRD.read_text(), "run `make chart-crd`"


def test_install_bundle_holds_crds_namespace_rbac_and_operator_in_order() -> None:
    documents = [doc for doc in yaml.safe_load_all(INSTALL_BUNDLE.read_text()) if doc]
    kinds = [doc["kind"] for doc in documents]

    assert kinds[0] == "Namespace"
    assert documents[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    crd_names = {
        d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"
    }
    assert "clusterkopfpeerings.kopf.dev" in crd_names
    if SOURCE_CRD.exists():
        assert "shops.microshop.dev" in crd_names
    # CRDs and the ServiceAccount come before what uses them; the operator comes last.
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding")
    assert kinds[-1] == "Deployment"
    assert max(i for i, k in enumerate(kinds) if k == "CustomResourceDefinition") < kinds.index(
        "Deployment"
    )
    for document in documents:
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
    assert assert_restricted(documents) == 1
    namespaced = [d for d in documents if d["kind"] in {"ServiceAccount", "Deployment"}]
    assert {d["metadata"]["namespace"] for d in namespaced} == {documents[0]["metadata"]["name"]}
