"""The dashboard's own HTTP surface: its files, /whoami, /curves and /scatter."""

from __future__ import annotations

from importlib.resources import files

import httpx

from lrsearch import storage
from tests.dashboard_tests.conftest import API, DashboardSite


def _get(site: DashboardSite, path: str, key: str | None = "read") -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {site.keys[key]}"}
    return httpx.get(site.url + path, headers=headers)


def test_the_page_and_its_assets_are_served_without_a_key(site: DashboardSite) -> None:
    page = _get(site, "/", key=None)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for src in ("/static/app.js", "/static/app.css", "/static/vendor/plotly.min.js"):
        assert src in page.text
    assert (
        _get(site, "/static/app.js", key=None).headers["content-type"].startswith("text/javascript")
    )
    assert _get(site, "/static/app.css", key=None).status_code == 200
    # Served from the installed plotly package, not from a copy in the repository;
    # gzipped (4.8 MB -> 1.4 MB) for clients that take it.
    shipped = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    for encoding, compressed in (("gzip, deflate", True), ("identity", False)):
        plotly = httpx.get(
            site.url + "/static/vendor/plotly.min.js", headers={"Accept-Encoding": encoding}
        )
        assert plotly.status_code == 200
        assert plotly.content == shipped
        assert (plotly.headers.get("content-encoding") == "gzip") is compressed
        assert int(plotly.headers["content-length"]) < len(shipped) / 2 or not compressed
        assert "max-age" in plotly.headers["cache-control"]
    # Only the dashboard's own files: no path tricks, no directory listing.
    for path in ("/static/../app.py", "/static/index.html", "/static/vendor/", "/static/x.js"):
        assert _get(site, path, key=None).status_code == 404, path


def test_whoami_tells_the_scope_and_tenant_of_the_key(site: DashboardSite) -> None:
    assert _get(site, f"{API}/whoami", "submit").json() == {"tenant": "default", "scope": "submit"}
    assert _get(site, f"{API}/whoami", "other_read").json() == {
        "tenant": "someone-else",
        "scope": "read",
    }
    refused = _get(site, f"{API}/whoami", key=None)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


def test_curves_are_the_top_trials_per_schedule_and_recent_pruned(site: DashboardSite) -> None:
    name = site.studies["done"]
    record = storage.get_study(site.backend, name)
    with site.backend.engine.connect() as conn:
        top = storage.top_trials_per_schedule(conn, record, k=2)
    body = _get(site, f"{API}/studies/{name}/curves?per_schedule=2&pruned=3").json()
    got_top = [i["number"] for i in body["items"] if i["group"] == "top"]
    assert got_top == [row.number for rows in top.values() for row in rows]
    pruned = [i for i in body["items"] if i["group"] == "pruned"]
    assert len(pruned) == 3
    assert all(i["state"] == "PRUNED" for i in pruned)
    assert [i["number"] for i in pruned] == sorted((i["number"] for i in pruned), reverse=True)
    for item in body["items"]:
        detail = _get(site, f"{API}/studies/{name}/trials/{item['number']}").json()
        assert item["lr_curve"] == detail["lr_curve"]
        assert (
            dict(zip(map(str, item["epochs"]), item["values"], strict=True))
            == (detail["intermediate_values"])
        )
        assert item["schedule"] == detail["schedule"]


def test_curves_by_number_and_their_bounds(site: DashboardSite) -> None:
    name = site.studies["done"]
    body = _get(site, f"{API}/studies/{name}/curves?numbers=5,1,999").json()
    assert [i["number"] for i in body["items"]] == [1, 5]
    assert {i["group"] for i in body["items"]} == {"requested"}
    too_many = ",".join(str(n) for n in range(storage.MAX_CURVES + 1))
    for query in (
        "per_schedule=11",
        "pruned=51",
        "numbers=1,,2",
        "numbers=-1",
        f"numbers={too_many}",
    ):
        response = _get(site, f"{API}/studies/{name}/curves?{query}")
        assert response.status_code == 422, query
        assert response.headers["content-type"] == "application/problem+json"
    other = _get(site, f"{API}/studies/{name}/curves", "other_read")
    assert other.status_code == 404


def test_scatter_samples_evenly_when_asked_for_fewer_points(site: DashboardSite) -> None:
    name = site.studies["done"]
    counts = site.api(f"/studies/{name}")["counts"]
    full = _get(site, f"{API}/studies/{name}/scatter").json()
    assert full["total"] == counts["COMPLETE"] + counts["PRUNED"]
    assert len(full["numbers"]) == full["total"]
    assert set(full["states"]) <= {"COMPLETE", "PRUNED"}
    sample = _get(site, f"{API}/studies/{name}/scatter?limit=5").json()
    assert sample["total"] == full["total"]
    stride = -(-full["total"] // 5)
    assert 0 < len(sample["numbers"]) <= 5
    assert all(n % stride == 0 for n in sample["numbers"])
    by_number = dict(zip(full["numbers"], full["values"], strict=True))
    assert all(by_number[n] == v for n, v in zip(sample["numbers"], sample["values"], strict=True))
