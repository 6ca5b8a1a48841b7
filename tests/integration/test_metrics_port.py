"""Each of the five processes serves its metrics on the metrics port only, never the public one."""

from __future__ import annotations

import httpx

from tests.support.shop import Shop


def test_metrics_are_on_the_metrics_port_and_not_on_the_public_one(shop: Shop) -> None:
    for name, service in shop.services.items():
        metrics_port = service.env["MICROSHOP_METRICS_PORT"]

        public = httpx.get(f"{service.url}/metrics", timeout=10)
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)

        assert public.status_code == 404, (name, public.text)
        assert public.json()["detail"] == "Not Found"
        assert scraped.status_code == 200, name
        assert "# TYPE microshop_http_requests_total counter" in scraped.text, name
