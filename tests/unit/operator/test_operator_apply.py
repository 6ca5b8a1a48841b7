"""The operator's API client renews rotated service account credentials on a 401."""

from __future__ import annotations

import asyncio

import aiohttp
import kopf
from aiohttp import web

from microshop_operator.apply import ApiError, KubernetesApi


async def _serve(valid_token: str) -> tuple[web.AppRunner, str, list[str]]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {valid_token}":
            return web.json_response({"kind": "Status", "reason": "Unauthorized"}, status=401)
        return web.json_response({"kind": "Shop", "metadata": {"name": "demo"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


def test_a_rotated_token_is_picked_up_and_the_request_retried_once() -> None:
    async def scenario() -> None:
        runner, server, seen = await _serve(valid_token="new")
        logins = [kopf.ConnectionInfo(server=server, token="new")]
        api = KubernetesApi(
            kopf.ConnectionInfo(server=server, token="old"),
            timeout=aiohttp.ClientTimeout(total=5),
            relogin=lambda: logins[0],
        )
        try:
            shop = await api.get("microshop.dev/v1alpha1", "Shop", "default", "demo")
            assert shop is not None and shop["metadata"]["name"] == "demo"
            assert seen == ["Bearer old", "Bearer new"]
            await api.get("microshop.dev/v1alpha1", "Shop", "default", "demo")
            assert seen[-1] == "Bearer new"  # kept for later requests
        finally:
            await api.close()
            await runner.cleanup()

    asyncio.run(scenario())


def test_without_new_credentials_a_401_is_an_error_not_a_loop() -> None:
    async def scenario() -> None:
        runner, server, seen = await _serve(valid_token="never")
        api = KubernetesApi(
            kopf.ConnectionInfo(server=server, token="old"),
            timeout=aiohttp.ClientTimeout(total=5),
            relogin=lambda: kopf.ConnectionInfo(server=server, token="old"),
        )
        try:
            try:
                await api.get("microshop.dev/v1alpha1", "Shop", "default", "demo")
            except ApiError as error:
                assert error.status == 401
            else:
                raise AssertionError("a 401 must raise")
            assert seen == ["Bearer old"]
        finally:
            await api.close()
            await runner.cleanup()

    asyncio.run(scenario())
