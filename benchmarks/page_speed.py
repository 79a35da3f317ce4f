"""The web page's own search round trip against a plain HTTP GET of the same API URL.

Serves the benchmark index that ``serve_load.py`` builds (a synthetic store of
``--regions`` regions, cached under ``benchmarks/results/.stores``, with a random ViT-B/32
CLIP that costs what the real one costs), opens the page in headless Chromium and, for each
of ``--queries`` distinct text queries:

* page: type the query, submit, and time with the browser's Performance API
  (``performance.now()``) until the results are drawn (request, JSON, grouping, cards;
  thumbnails load later and are not counted);
* API: a plain HTTP GET, from Python, of the URL the page requested (read back from the
  browser's resource timing entries), timed with ``perf_counter``.

The two alternate which goes first, so the model's text cache favours neither. Prints p50
and p95 of each and the page's p50 overhead; the target is at most 50 ms.

    python benchmarks/page_speed.py                     # 100k regions, 40 queries
    python benchmarks/page_speed.py --regions 10000 --queries 20   # serve_load.py's options too
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import quote_plus

from _common import ensure_clip_model, log, percentile, setup_environment

setup_environment()

import httpx  # noqa: E402
import serve_load  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fixtures.browser import chromium  # noqa: E402

TARGET_MS = 50.0
# Submit the query and resolve with the time until the results are drawn.
PAGE_SEARCH = """
const [query, done] = arguments;
const results = document.getElementById("results");
const box = document.getElementById("q");
box.value = query;
performance.clearResourceTimings(); // the buffer holds 250 entries; thumbnails fill it
const t0 = performance.now();
const observer = new MutationObserver(() => {
  if (!results.hasAttribute("aria-busy") && results.querySelector("figure")) {
    observer.disconnect();
    done(performance.now() - t0);
  }
});
observer.observe(results, { attributes: true, childList: true, subtree: true });
document.getElementById("search").requestSubmit();
"""


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """This script's options, and serve_load.py's for the rest (index, model, store)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--queries", type=int, default=40, help="distinct queries, each timed twice")
    args, rest = p.parse_known_args(argv)
    return args, serve_load.parse_args(rest)


# The search URL the page requested for a query (its resource timing entry may be
# recorded a moment after the results are drawn).
REQUESTED = """
return performance.getEntriesByType("resource").map((e) => e.name)
  .filter((n) => n.includes("/api/v1/search?") && n.includes(arguments[0])).pop() || null;
"""


def page_search(driver, query: str) -> tuple[float, str]:
    driver.set_script_timeout(120)
    elapsed = driver.execute_async_script(PAGE_SEARCH, query)
    marker = f"q={quote_plus(query)}&"
    for _ in range(100):
        url = driver.execute_script(REQUESTED, marker)
        if url:
            return float(elapsed), str(url)
        time.sleep(0.02)
    raise SystemExit(f"no resource timing entry for {query!r}")


def api_get(client: httpx.Client, url: str) -> float:
    t0 = time.perf_counter()
    response = client.get(url)
    response.json()
    elapsed = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text[:200]}")
    return elapsed


def measure(
    driver, client: httpx.Client, base: str, queries: int
) -> tuple[list[float], list[float]]:
    page_ms, api_ms = [], []
    for i in range(-2, queries):  # two warm-up rounds, not counted
        query = f"a photo of object number {i + 3}"
        if i % 2:  # the page first: the API then meets a cached text embedding
            elapsed, url = page_search(driver, query)
            api = api_get(client, url)
        else:  # the API first, on the URL the page will request
            url = f"{base}/api/v1/search?q={query.replace(' ', '+')}&k=24&offset=0"
            api = api_get(client, url)
            elapsed, page_url = page_search(driver, query)
            if page_url != url:
                raise SystemExit(f"the page asked {page_url}, not {url}")
        if i >= 0:
            page_ms.append(elapsed)
            api_ms.append(api)
    return page_ms, api_ms


def main(argv: list[str] | None = None) -> int:
    args, store = parse_args(argv)
    clip = ensure_clip_model(store.clip_model)
    index = Path(store.index) if store.index else serve_load.synthetic_index(store, clip)
    with (
        serve_load.server(index, clip) as url,
        chromium() as driver,
        httpx.Client(timeout=120) as client,
    ):
        status = client.get(f"{url}/api/v1/status").json()
        log(f"server up at {url}: {status['vectors']:,} vectors; {args.queries} queries ...")
        driver.get(f"{url}/")
        page_ms, api_ms = measure(driver, client, url, args.queries)
    p50_page, p50_api = percentile(page_ms, 50), percentile(api_ms, 50)
    print(
        f"\n{status['vectors']:,} regions ({status['faiss_kind']}), k=24, {args.queries} queries\n"
    )
    print("| round trip | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    print(f"| API, plain HTTP GET | {p50_api:.1f} | {percentile(api_ms, 95):.1f} |")
    print(f"| page: submit to results drawn | {p50_page:.1f} | {percentile(page_ms, 95):.1f} |")
    overhead = p50_page - p50_api
    verdict = "met" if overhead <= TARGET_MS else "missed"
    print(f"\npage p50 overhead: {overhead:.1f} ms (target <= {TARGET_MS:.0f} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
