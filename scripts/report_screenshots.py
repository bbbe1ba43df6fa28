"""Screenshots of a ``tuneshift report`` page for docs/report.md (headless Chromium via selenium).

Usage::

    tuneshift demo --out /tmp/demo                  # or any comparison folder
    tuneshift report /tmp/demo --out /tmp/demo/report.html
    python scripts/report_screenshots.py /tmp/demo/report.html docs/img/report_demo

writes ``<prefix>_top.png`` (the comparison tables and the position plot) and
``<prefix>_record.png`` (the example record of the first section, base and tuned side by side,
the tuned side's heat map open). Needs chromium and chromedriver (``make browser``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("prefix", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1100)
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp()
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={args.width},{args.height}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(a)
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        d.get(args.page.resolve().as_uri())
        args.prefix.parent.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(f"{args.prefix}_top.png")
        sec = d.find_element(By.CSS_SELECTOR, "section.attribution")
        detail = next(e for e in sec.find_elements(By.CSS_SELECTOR, ".record-detail") if e.is_displayed())
        detail.find_element(By.CSS_SELECTOR, ".side.tuned .heat-toggle").click()
        d.execute_script("arguments[0].scrollIntoView()", detail)
        d.save_screenshot(f"{args.prefix}_record.png")
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"{args.prefix}_top.png {args.prefix}_record.png")


if __name__ == "__main__":
    main()
