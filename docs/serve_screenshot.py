"""Make the README's screenshots of the web page over real photos, in headless Chromium.

    python docs/serve_screenshot.py --photos PHOTOS_DIR --detector yolo11n-coco.pt \
        [--clip-model CLIP_DIR] [--query "a person"] [--label person] [--limit 24]

Indexes the first ``--limit`` photos (plus an exact and a half-size copy of the first, so
the duplicates view has a group) into a temporary index, serves it on a free loopback port
and saves, into ``--out-dir`` (``docs/``):

* ``serve-page.png``: a search with a label filter, crops grouped by photo;
* ``serve-explore.png``: explore by object, one crop per detector label;
* ``serve-localize.png``: the photo view with two localized prompts and their heat maps;
* ``serve-duplicates.png``: the duplicate groups;
* ``serve-phone.png``: the search at a phone's width (390 px).

Without ``--clip-model`` a tiny random CLIP is built (no CLIP weights can be downloaded on
the machines this was made on): crops and boxes are real detections, rankings are not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from indexer.settings import configure_ultralytics  # noqa: E402

configure_ultralytics()

from PIL import Image  # noqa: E402

from tests.fixtures.browser import NARROW, WIDE, chromium  # noqa: E402
from tests.fixtures.server import run_server  # noqa: E402

SHOT_COLOURS = 64  # palette size of the saved PNGs: small files, photos still readable
ALL_IMAGES = (
    "const t = [...document.querySelectorAll('img')].filter(i => i.offsetParent);"
    "return t.length > 0 && t.every(i => i.complete && i.naturalWidth > 0)"
)


def prepare_photos(source: Path, folder: Path, limit: int) -> None:
    """Link the first ``limit`` photos and add two copies of the first one."""
    folder.mkdir()
    photos = sorted(p for p in source.iterdir() if p.is_file())[:limit]
    for path in photos:
        os.symlink(path.resolve(), folder / path.name)
    first = Image.open(photos[0])
    shutil.copyfile(photos[0], folder / f"copy-of-{photos[0].name}")
    first.resize((first.width // 2, first.height // 2)).save(folder / f"small-{photos[0].name}")


def save(driver, out: Path) -> None:
    driver.save_screenshot(str(out))
    image = Image.open(out).convert("RGB")
    image.quantize(colors=SHOT_COLOURS, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


def settle(driver, condition: str = ALL_IMAGES) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 120).until(lambda d: d.execute_script(condition))


def shoot_views(driver, url: str, args: argparse.Namespace, out_dir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    search = f"{url}/?q={args.query.replace(' ', '+')}&kind=object&label={args.label}"
    driver.set_window_size(*WIDE)
    driver.get(search)
    settle(driver, "return document.querySelectorAll('#results img.thumb').length > 0")
    driver.find_element(By.CSS_SELECTOR, "#filters summary").click()  # the results in view
    settle(driver)
    save(driver, out_dir / "serve-page.png")

    driver.set_window_size(*NARROW)
    driver.get(search)
    settle(driver, "return document.querySelectorAll('#results img.thumb').length > 0")
    driver.execute_script("document.getElementById('results').scrollIntoView()")
    settle(driver)
    save(driver, out_dir / "serve-phone.png")

    driver.set_window_size(*WIDE)
    driver.get(f"{url}/?view=explore")
    settle(driver, "return document.querySelectorAll('#explore-grid img').length > 0")
    settle(driver)
    save(driver, out_dir / "serve-explore.png")

    driver.get(search)
    settle(driver, "return document.querySelectorAll('#results img.thumb').length > 0")
    driver.find_element(By.CSS_SELECTOR, "#filters summary").click()
    driver.find_element(By.CSS_SELECTOR, "#results button.open").click()
    settle(driver, "return document.getElementById('photo').naturalWidth > 0")
    driver.find_element(By.ID, "show-heat").click()
    driver.find_element(By.ID, "prompts").send_keys(args.prompts, Keys.ENTER)
    settle(driver, "return document.querySelectorAll('#legend li').length > 0")
    save(driver, out_dir / "serve-localize.png")

    driver.get(f"{url}/?view=duplicates&threshold={args.threshold}")
    settle(driver, "return document.querySelectorAll('#dup-groups img').length > 0")
    settle(driver)
    save(driver, out_dir / "serve-duplicates.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--photos", required=True)
    p.add_argument("--detector", required=True)
    p.add_argument("--clip-model", help="a CLIP folder; default: a tiny random one")
    p.add_argument("--query", default="a person")
    p.add_argument("--label", default="person", help="the label filter of the search shot")
    p.add_argument("--prompts", default="a dog, a person", help="localized in the photo shot")
    p.add_argument("--limit", type=int, default=24)
    p.add_argument(
        "--threshold", default="0.9999", help="of the duplicates shot (a random CLIP finds all)"
    )
    p.add_argument("--out-dir", default=str(REPO_ROOT / "docs"))
    args = p.parse_args()

    from indexer import Indexer

    work = Path(tempfile.mkdtemp(prefix="objsearch-shot-"))
    try:
        clip = args.clip_model
        if clip is None:
            from tests.model_factory import make_tiny_clip

            clip = str(make_tiny_clip(work / "clip"))
        photos = work / "photos"
        prepare_photos(Path(args.photos), photos, args.limit)
        index = work / "index"
        indexer = Indexer(index, clip_model=clip, detector_weights=args.detector, device="cpu")
        print(indexer.index([photos]).to_dict())
        with run_server(index, Path(clip)) as server, chromium() as driver:
            shoot_views(driver, server.url, args, Path(args.out_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
