"""Every view of the web page in a real headless Chromium, over a real server: filters (the
same results as the API, in the URL, kept by a reload, undone by Back), load more, explore
by object, the timeline, duplicates, localize in the photo view, the keyboard, the status
line, and each view at a laptop's and a phone's width (screenshots under
``$OBJSEARCH_SCREENSHOTS`` or pytest's temporary folder).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.fixtures.browser import csp_violations, screenshot_dir, shoot
from tests.fixtures.exif_photos import NICE
from tests.fixtures.server import API, Server

PAGE = 24  # the page's k
RESULT_IDS = (  # in rank order (a later page's crops join their photo's earlier group)
    "return [...document.querySelectorAll('#results .result button.open')]"
    ".sort((a, b) => a.dataset.rank - b.dataset.rank).map(b => b.dataset.region)"
)
MAX_ASSETS = 100_000  # bytes of JS and CSS the page may load


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def page(browser, library_server: Server):
    """The browser on the library server's page, each test starting from a fresh load."""
    browser.get_log("browser")
    yield browser
    assert csp_violations(browser) == []  # nothing any view did broke the page's policy


def wait_for(browser, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def open_page(browser, server: Server, query: str = "") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(f"{server.url}/{query}")
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "status"), "photos"))


def settled_results(browser) -> list[str]:
    """The region ids shown, once a search has finished."""
    wait_for(browser, lambda d: d.execute_script(
        "const r = document.getElementById('results');"
        "return !r.hasAttribute('aria-busy') && (r.childElementCount > 0 ||"
        " document.getElementById('message').textContent !== 'Searching…')"
    ))  # fmt: skip
    return browser.execute_script(RESULT_IDS)


def api_ids(server: Server, page_query: dict[str, list[str]], k: int = PAGE) -> list[str]:
    """What the API answers for the page's own URL parameters."""
    params = [(name, v) for name, values in page_query.items() for v in values if name != "view"]
    params.append(("k", str(k)))
    hits = server.client().get(f"{API}/search?{urlencode(params)}").json()
    return [str(h["region_id"]) for h in hits]


def url_query(browser) -> dict[str, list[str]]:
    return parse_qs(urlparse(browser.current_url).query)


def test_filters_match_the_api_reload_and_back(page, library_server: Server, shots) -> None:
    from selenium.webdriver.common.by import By

    open_page(page, library_server)
    page.find_element(By.CSS_SELECTOR, "#filters summary").click()
    fields = {
        "after": "2021-01", "before": "2024", "camera": "canon", "min_score": "-1",
        "not": "a dog, a car", "match": "beach", "lat": str(NICE[0]), "lon": str(NICE[1]),
        "km": "50",
    }  # fmt: skip
    for field, value in fields.items():
        page.find_element(By.ID, field).send_keys(value)
    for folder in page.find_elements(By.CSS_SELECTOR, "#folders input"):
        if "trips" in folder.get_attribute("value"):
            folder.click()
    page.find_element(By.CSS_SELECTOR, '#labels button[data-label="cat"]').click()
    page.find_element(By.ID, "q").send_keys("a cat")
    page.find_element(By.ID, "go").click()
    wait_for(page, lambda d: "q=" in d.current_url)
    shown = settled_results(page)
    query = url_query(page)
    assert query["not"] == ["a dog", "a car"] and query["label"] == ["cat"]
    assert len(query["in"]) == 2 and query["near"] == [f"{NICE[0]},{NICE[1]},50"]
    for name in ("after", "before", "camera", "min_score", "match"):
        assert query[name] == [fields[name]]
    assert shown and shown == api_ids(library_server, query)
    names = {h.get_attribute("title") for h in page.find_elements(By.CSS_SELECTOR, ".group h3")}
    assert names and all("/trips/2023/beach_" in n for n in names)  # the filters did filter
    shoot(page, shots, "search-filters")

    page.refresh()  # a reload (or a shared link) shows the same search, form filled in
    wait_for(page, lambda d: d.execute_script(RESULT_IDS))
    assert settled_results(page) == shown
    assert page.find_element(By.ID, "camera").get_attribute("value") == "canon"
    chip = page.find_element(By.CSS_SELECTOR, '#labels button[data-label="cat"]')
    assert chip.get_attribute("aria-pressed") == "true" and chip.is_displayed()

    page.find_element(By.ID, "clear-filters").click()
    page.find_element(By.ID, "go").click()
    wait_for(page, lambda d: "after=" not in d.current_url)
    unfiltered = settled_results(page)
    assert unfiltered != shown and len(unfiltered) > len(shown)
    page.back()  # Back returns to the filtered search
    wait_for(page, lambda d: "after=" in d.current_url)
    wait_for(page, lambda d: d.execute_script(RESULT_IDS) == shown)
    assert page.find_element(By.ID, "after").get_attribute("value") == "2021-01"


def test_load_more_adds_the_next_page(page, library_server: Server) -> None:
    from selenium.webdriver.common.by import By

    open_page(page, library_server, "?q=a+cat&kind=object&group=object")
    first = settled_results(page)
    assert len(first) == PAGE
    page.find_element(By.ID, "load-more").click()
    wait_for(page, lambda d: len(d.execute_script(RESULT_IDS)) > PAGE)
    both = settled_results(page)
    assert both[:PAGE] == first
    assert both == api_ids(library_server, url_query(page), k=2 * PAGE)
    ranks = page.execute_script(
        "return [...document.querySelectorAll('#results figcaption')]"
        ".map(c => Number(c.textContent.split(' ')[0].slice(1)))"
    )
    assert sorted(ranks) == list(range(1, len(both) + 1))  # the captions number them on
    photos = [h.get_attribute("title") for h in page.find_elements(By.CSS_SELECTOR, ".group h3")]
    assert len(photos) == len(set(photos))  # still one group per photo


def test_explore_lists_labels_opens_one_and_searches_within(
    page, library_server: Server, shots
) -> None:
    from selenium.webdriver.common.by import By

    open_page(page, library_server)
    page.find_element(By.ID, "tab-explore").click()
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-grid figcaption"))
    labels = library_server.client().get(f"{API}/labels").json()
    captions = [c.text for c in page.find_elements(By.CSS_SELECTOR, "#explore-grid figcaption")]
    assert captions == [f"{entry['label']} · {entry['objects']}" for entry in labels]
    assert url_query(page) == {"view": ["explore"]}
    shoot(page, shots, "explore")

    page.find_element(By.CSS_SELECTOR, "#explore-grid button.open").click()
    label = labels[0]["label"]
    wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#explore-grid .result")) == PAGE)
    assert url_query(page)["explore"] == [label]
    assert page.find_element(By.ID, "explore-title").text.startswith(f"{labels[0]['objects']} ×")
    more = page.find_element(By.ID, "explore-more")
    assert more.is_displayed() == (labels[0]["objects"] > PAGE)
    more.click()
    wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#explore-grid .result")) > PAGE)
    shoot(page, shots, "explore-label")

    page.find_element(By.ID, "within-q").send_keys("a sleeping cat")
    page.find_element(By.CSS_SELECTOR, "#within button").click()
    wait_for(page, lambda d: "q=" in d.current_url)
    shown = settled_results(page)
    query = url_query(page)
    assert query["label"] == [label] and query["kind"] == ["object"]
    assert shown and shown == api_ids(library_server, query)

    page.back()  # Back to the label's crops, then "All objects" to the labels again
    wait_for(page, lambda d: url_query(d).get("explore") == [label])
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-grid .result"))
    page.find_element(By.ID, "all-labels").click()
    wait_for(page, lambda d: url_query(d) == {"view": ["explore"]})
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-grid figcaption"))
    assert page.find_element(By.ID, "within").is_displayed() is False


def test_timeline_sets_a_date_range(page, library_server: Server, shots) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(page, library_server, "?view=timeline")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#strip .month"))
    timeline = library_server.client().get(f"{API}/timeline").json()
    bars = {b.get_attribute("data-month"): b for b in page.find_elements(By.CSS_SELECTOR, ".month")}
    first, last = timeline["months"][0]["month"], timeline["months"][-1]["month"]
    assert min(bars) == first and max(bars) == last  # every month between, empty ones too
    for entry in timeline["months"]:
        assert f": {entry['photos']} photos" in bars[entry["month"]].get_attribute("aria-label")
    shoot(page, shots, "timeline")

    bars["2023-06"].click()
    wait_for(page, lambda d: "after=2023-06" in d.current_url)
    assert url_query(page)["before"] == ["2023-07"]
    bar = page.find_element(By.CSS_SELECTOR, '.month[data-month="2023-08"]')
    ActionChains(page).key_down(Keys.SHIFT).click(bar).key_up(Keys.SHIFT).perform()
    wait_for(page, lambda d: "before=2023-09" in d.current_url)
    assert url_query(page)["after"] == ["2023-06"]
    chosen = page.find_elements(By.CSS_SELECTOR, ".month.chosen")
    assert [c.get_attribute("data-month") for c in chosen] == ["2023-06", "2023-07", "2023-08"]

    page.find_element(By.ID, "q").send_keys("a photo", Keys.ENTER)
    wait_for(page, lambda d: "q=a+photo" in d.current_url)
    shown = settled_results(page)
    query = url_query(page)
    assert shown and shown == api_ids(library_server, query)
    names = [h.get_attribute("title") for h in page.find_elements(By.CSS_SELECTOR, ".group h3")]
    assert names and all("beach_" in n for n in names)  # the 2023 summer photos only


def test_duplicates_show_a_group_and_open_a_photo(page, library_server: Server, shots) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    open_page(page, library_server)
    page.find_element(By.ID, "tab-duplicates").click()
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#dup-groups .dup"))
    threshold = page.find_element(By.ID, "dup-threshold")
    threshold.clear()
    threshold.send_keys("1", Keys.ENTER)
    wait_for(page, lambda d: "threshold=1" in d.current_url)
    wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#dup-groups .dup")) == 1)
    cards = page.find_elements(By.CSS_SELECTOR, "#dup-groups figcaption")
    texts = sorted(c.text for c in cards)
    assert [t.split(" · ")[0] for t in texts] == ["beach_0.jpg", "beach_copy.jpg"]
    assert all(" · 1.000 · " in t for t in texts) and sum("keep" in t for t in texts) == 1
    assert "exact" in page.find_element(By.CSS_SELECTOR, "#dup-groups h3").text
    shoot(page, shots, "duplicates")
    page.find_element(By.CSS_SELECTOR, "#dup-groups button.open").click()
    wait_for(page, ec.visibility_of_element_located((By.ID, "viewer")))
    assert page.find_element(By.ID, "viewer-title").text in ("beach_0.jpg", "beach_copy.jpg")
    page.find_element(By.ID, "close").click()


def test_localize_draws_one_colour_per_prompt(page, library_server: Server, shots) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    open_page(page, library_server, "?q=a+beach&kind=image")
    settled_results(page)
    page.find_element(By.CSS_SELECTOR, "#results button.open").click()
    wait_for(page, ec.visibility_of_element_located((By.ID, "viewer")))
    page.find_element(By.ID, "show-heat").click()
    page.find_element(By.ID, "prompts").send_keys("the sand, the sky", Keys.ENTER)
    wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#legend li")) == 2)
    photo_id = page.execute_script("return document.getElementById('photo').src").split("/")[-2]
    expected = (
        library_server.client()
        .post(f"{API}/localize", data={"prompts": ["the sand", "the sky"], "photo_id": photo_id})
        .json()["prompts"]
    )
    for i, prompt in enumerate(expected):
        drawn = page.find_elements(By.CSS_SELECTOR, f"#boxes g.loc.p{i} rect")
        assert len(drawn) == len(prompt["boxes"]) > 0
        assert [float(r.get_attribute("x")) for r in drawn] == [
            b["box"][0] for b in prompt["boxes"]
        ]
        assert page.find_elements(By.CSS_SELECTOR, f"#heat g.p{i} rect")
    colours = {
        page.execute_script(
            "return getComputedStyle(arguments[0]).stroke",
            page.find_element(By.CSS_SELECTOR, f"#boxes g.loc.p{i} rect"),
        )
        for i in range(2)
    }
    assert len(colours) == 2
    shoot(page, shots, "localize")
    page.find_element(By.ID, "close").click()


def test_keyboard_moves_opens_and_closes(page, library_server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    open_page(page, library_server, "?q=a+cat&kind=object&group=object")
    settled_results(page)
    buttons = page.find_elements(By.CSS_SELECTOR, "#results button.open")
    focused = lambda: page.switch_to.active_element  # noqa: E731
    buttons[0].send_keys(Keys.ARROW_RIGHT)
    assert focused() == buttons[1]
    # The focus is always visible: the focused card has the page's focus outline.
    outline = "return getComputedStyle(arguments[0]).outlineStyle"
    assert page.execute_script(outline, focused()) not in ("", "none")
    focused().send_keys(Keys.ARROW_LEFT)
    assert focused() == buttons[0]
    top = buttons[0].rect["y"]
    focused().send_keys(Keys.ARROW_DOWN)
    below = focused()
    assert below in buttons and below.rect["y"] > top
    below.send_keys(Keys.ARROW_UP)
    assert focused().rect["y"] == top
    focused().send_keys(Keys.END)
    assert focused() == buttons[-1]
    opener = focused()
    opener.send_keys(Keys.ENTER)
    wait_for(page, ec.visibility_of_element_located((By.ID, "viewer")))
    assert focused() == page.find_element(By.ID, "close")
    focused().send_keys(Keys.ESCAPE)
    wait_for(page, ec.invisibility_of_element_located((By.ID, "viewer")))
    assert focused() == opener  # back where the reader was


def test_status_line_shows_counts_and_watch_progress(page, library_server: Server) -> None:
    from selenium.webdriver.common.by import By

    open_page(page, library_server)
    status = library_server.client().get(f"{API}/status").json()
    line = page.find_element(By.ID, "status").text
    assert line.startswith(f"{status['photos']} photos, {status['objects']} objects")
    watch = {
        "folders": ["/photos/a", "/photos/b"], "state": "indexing", "done": 12, "total": 200,
        "pending": 0, "last_batch_at": None, "last_error": None,
    }  # fmt: skip
    text = "return window.objsearch.statusText(arguments[0])"
    indexing = page.execute_script(text, {**status, "watch": watch})
    assert indexing.startswith("Indexing 12 of 200 new photos…") and line in indexing
    idle = page.execute_script(text, {**status, "watch": {**watch, "state": "idle"}})
    assert idle == f"{line} · watching 2 folders"
    failed = {**watch, "state": "idle", "last_error": "disk full"}
    assert page.execute_script(text, {**status, "watch": failed}).endswith("last error: disk full")
    assert page.execute_script(text, {**status, "watch": None}) == line


def test_page_assets_stay_small(library_server: Server) -> None:
    """All the JavaScript and CSS the page loads, as served, within the size budget."""
    import re

    with library_server.client() as client:
        html = client.get("/").text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+\.(?:js|css))"', html)
        seen, total = set(), 0
        while assets:  # the modules the entry module imports, and theirs
            path = assets.pop()
            if path in seen:
                continue
            seen.add(path)
            body = client.get(path)
            assert body.status_code == 200, path
            total += len(body.content)
            assets += [f"/static/{m}" for m in re.findall(r'from "\./([\w-]+\.js)"', body.text)]
    assert len(seen) >= 5 and "/static/style.css" in seen
    assert total <= MAX_ASSETS, f"{total} bytes of JS and CSS"
