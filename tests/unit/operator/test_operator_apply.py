"""The operator's API client: renewed credentials on a 401, retries of what is transient."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from microshop_operator.apply import ApiError, KubernetesApi, Retry
from microshop_operator.config import OperatorConfig


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


async def _scripted(statuses: list[int]) -> tuple[web.AppRunner, str, list[int]]:
    """A server answering each request with the next status (the last one repeats)."""
    answered: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        status = statuses[min(len(answered), len(statuses) - 1)]
        answered.append(status)
        if status >= 400:
            return web.json_response(
                {"kind": "Status", "reason": f"Status{status}", "message": "scripted"},
                status=status,
            )
        return web.json_response({"kind": "Shop", "metadata": {"name": "demo"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", answered


def _outcome(statuses: list[int], retry: Retry) -> tuple[int | str, list[int]]:
    """(the status the call ended with, or "ok"; every status the server answered)."""

    async def scenario() -> tuple[int | str, list[int]]:
        runner, server, answered = await _scripted(statuses)
        api = KubernetesApi(
            kopf.ConnectionInfo(server=server, token="t"),
            timeout=aiohttp.ClientTimeout(total=5),
            retry=retry,
        )
        try:
            await api.get("microshop.dev/v1alpha1", "Shop", "default", "demo")
            return "ok", answered
        except ApiError as error:
            return error.status, answered
        finally:
            await api.close()
            await runner.cleanup()

    return asyncio.run(scenario())


FAST = {"first_seconds": 0.001, "max_seconds": 0.002}


@pytest.mark.parametrize(
    ("statuses", "attempts", "ended", "answered"),
    [
        # Load shed (APF's 429), unavailable, timed out: sent again until it succeeds ...
        ([429, 503, 504, 200], 4, "ok", [429, 503, 504, 200]),
        # ... but no more often than configured; the last answer is the error.
        ([503], 3, 503, [503, 503, 503]),
        ([503], 1, 503, [503]),
        # A refusal or an internal error is the reconcile's to report, not to repeat.
        ([500, 200], 4, 500, [500]),
        ([409, 200], 4, 409, [409]),
        ([422, 200], 4, 422, [422]),
        # 404 is an answer (get says None), never retried.
        ([404, 200], 4, "ok", [404]),
    ],
)
def test_transient_failures_are_retried_with_backoff_as_configured(
    statuses: list[int], attempts: int, ended: int | str, answered: list[int]
) -> None:
    outcome, seen = _outcome(statuses, Retry(attempts=attempts, **FAST))
    assert (outcome, seen) == (ended, answered)


def test_the_retry_comes_from_the_operator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSHOP_OPERATOR_API_RETRY_ATTEMPTS", "7")
    monkeypatch.setenv("MICROSHOP_OPERATOR_API_RETRY_FIRST_SECONDS", "0.5")
    monkeypatch.setenv("MICROSHOP_OPERATOR_API_RETRY_MAX_SECONDS", "9")

    assert OperatorConfig().api_retry == Retry(attempts=7, first_seconds=0.5, max_seconds=9)
    monkeypatch.delenv("MICROSHOP_OPERATOR_API_RETRY_ATTEMPTS")
    assert OperatorConfig().api_retry == Retry(attempts=4, first_seconds=0.5, max_seconds=9)


def test_a_broken_connection_is_retried_then_reported() -> None:
    async def scenario() -> None:
        # A port nobody listens on: every attempt is refused.
        runner, server, _ = await _scripted([200])
        await runner.cleanup()
        api = KubernetesApi(
            kopf.ConnectionInfo(server=server, token="t"),
            timeout=aiohttp.ClientTimeout(total=5),
            retry=Retry(attempts=3, **FAST),
        )
        calls = 0
        send = api._send

        async def counted(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            return await send(*args)

        api._send = counted  # type: ignore[method-assign]
        try:
            with pytest.raises(aiohttp.ClientConnectionError):
                await api.get("microshop.dev/v1alpha1", "Shop", "default", "demo")
            assert calls == 3
        finally:
            await api.close()

    asyncio.run(scenario())
