"""Make docs/serve-page.png: the web page over an index of real photos, in headless Chromium.

    python docs/serve_screenshot.py --photos PHOTOS_DIR --detector yolo11n-coco.pt \
        --clip-model CLIP_DIR [--query "a dog"] [--limit 40]

Indexes the first ``--limit`` photos into a temporary index, serves it on a free loopback
port, types the query, waits for the crop thumbnails and saves a screenshot.
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

from tests.fixtures.browser import CHROMIUM_FLAGS  # noqa: E402
from tests.fixtures.server import run_server  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--photos", required=True)
    p.add_argument("--detector", required=True)
    p.add_argument("--clip-model", required=True)
    p.add_argument("--query", default="a dog")
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "serve-page.png"))
    args = p.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from indexer import Indexer

    work = Path(tempfile.mkdtemp(prefix="objsearch-shot-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for path in sorted(Path(args.photos).iterdir())[: args.limit]:
            os.symlink(path.resolve(), photos / path.name)
        index = work / "index"
        indexer = Indexer(
            index, clip_model=args.clip_model, detector_weights=args.detector, device="cpu"
        )
        print(indexer.index([photos]).to_dict())
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or ""
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        with run_server(index, Path(args.clip_model)) as server:
            service = DriverService(executable_path=shutil.which("chromedriver"))
            driver = webdriver.Chrome(options=options, service=service)
            try:
                driver.set_window_size(1200, 860)
                driver.get(server.url + "/")
                driver.find_element(By.CSS_SELECTOR, 'input[name="kind"][value="object"]').click()
                driver.find_element(By.ID, "q").send_keys(args.query, Keys.ENTER)
                WebDriverWait(driver, 120).until(
                    lambda d: d.execute_script(
                        "const t = [...document.querySelectorAll('img.thumb')];"
                        "return t.length > 0 && t.every(i => i.complete && i.naturalWidth > 0)"
                    )
                )
                raw = work / "shot.png"
                driver.save_screenshot(str(raw))
            finally:
                driver.quit()
        image = Image.open(raw).convert("RGB")
        image = image.quantize(colors=192, method=Image.Quantize.MEDIANCUT)
        image.save(args.out, optimize=True)
        print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
