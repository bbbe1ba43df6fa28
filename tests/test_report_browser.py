"""The report page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium): no console errors, the expected elements visible and working, markup in
prompts shown as text, a screenshot that is not blank.

``make test`` installs chromium first (``make browser``); where it cannot be installed (no
root, no package manager) this test is skipped with that reason.
"""

from __future__ import annotations

import io
import shutil
import tempfile

import numpy as np
import pytest

from tuneshift.reports.html import write_report

pytestmark = pytest.mark.slow  # a headless Chromium: `make test-fast` leaves it out

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    if not CHROMIUM or not DRIVER:
        pytest.skip(
            "chromium and chromedriver are not installed; `make browser` installs them "
            "(apt-get install chromium chromium-driver, needs root)"
        )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tuneshift-chromium-")
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _visible(elements):
    return [e for e in elements if e.is_displayed()]


def test_report_in_headless_chromium(browser, report_comparison_dir, tmp_path):
    from selenium.webdriver.common.by import By

    page = write_report([report_comparison_dir], tmp_path / "report.html")
    browser.get(page.resolve().as_uri())
    assert browser.title == "tuneshift report"
    assert browser.find_element(By.TAG_NAME, "h1").is_displayed()
    section = browser.find_element(By.CSS_SELECTOR, "section.attribution")
    assert section.is_displayed()
    assert section.find_element(By.CSS_SELECTOR, "table.paired").is_displayed()
    assert section.find_element(By.CSS_SELECTOR, "figure.position-plot svg").is_displayed()

    # the record list is sorted by the paired difference, descending; a header click re-sorts
    rows = section.find_elements(By.CSS_SELECTOR, "table.records tbody tr")
    assert len(rows) == 7
    diffs = [float(r.find_elements(By.TAG_NAME, "td")[4].get_attribute("data-value")) for r in rows]
    assert diffs == sorted(diffs, reverse=True)
    section.find_elements(By.CSS_SELECTOR, "table.records th")[4].click()
    rows = section.find_elements(By.CSS_SELECTOR, "table.records tbody tr")
    assert [float(r.find_elements(By.TAG_NAME, "td")[4].get_attribute("data-value")) for r in rows] == sorted(diffs)

    # one record view at a time; clicking the hostile record shows it, its markup as text
    assert len(_visible(section.find_elements(By.CSS_SELECTOR, ".record-detail"))) == 1
    row = next(r for r in rows if r.find_element(By.TAG_NAME, "td").text == "xss<b>")
    row.click()
    (detail,) = _visible(section.find_elements(By.CSS_SELECTOR, ".record-detail"))
    assert "Record xss<b>" in detail.find_element(By.TAG_NAME, "h4").text
    prompt = detail.find_element(By.CSS_SELECTOR, ".side.base .prompt").text
    assert '<script>alert("x")</script>' in prompt and "<img src=x onerror=alert(1)>" in prompt
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert len(_visible(detail.find_elements(By.CSS_SELECTOR, ".tpl"))) >= 2

    # the heat map opens on its button and answers hover with the cell's tokens
    side = detail.find_element(By.CSS_SELECTOR, ".side.tuned")
    side.find_element(By.CSS_SELECTOR, ".heat-toggle").click()
    canvas = side.find_element(By.CSS_SELECTOR, "canvas.heat-canvas")
    assert canvas.is_displayed() and int(canvas.get_attribute("width")) > 110
    from selenium.webdriver.common.action_chains import ActionChains

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    # inside the first cell (canvas pixels 110 + 3, 90 + 3; cells are >= 6 px), as CSS pixels from the element's centre
    w, h = int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))
    rect = canvas.rect
    dx, dy = (113 / w - 0.5) * rect["width"], (93 / h - 0.5) * rect["height"]
    ActionChains(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).perform()
    caption = side.find_element(By.CSS_SELECTOR, ".heat-caption").text
    assert caption.startswith("prompt token 0 ") and "response token 0 " in caption
    assert len(side.find_elements(By.CSS_SELECTOR, ".tok.hl")) == 1

    browser.execute_script("window.scrollTo(0, 0)")
    png = browser.get_screenshot_as_png()
    logs = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert logs == [], logs

    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    assert img.shape[0] > 500 and img.shape[1] > 1000
    not_white = (img < 0.95).any(axis=2).mean()
    assert not_white > 0.02, f"screenshot nearly blank ({not_white:.1%} non-white pixels)"
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 20  # text, table lines, colours
