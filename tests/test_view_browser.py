"""`vla-data view` in a real browser: Debian's chromium, headless, driven by selenium.

Nothing is downloaded: the browser and driver are the system's (`apt-get install chromium
chromium-driver`), Selenium Manager is told to stay offline. Without them the test skips with a
message, except in CI (env CI set), where it fails. Screenshots go to the test's tmp folder, or to
$VLA_VIEW_SCREENSHOTS when set (docs/view-episode.jpg is view-episode.png from such a run,
saved as JPEG).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from vla_data.demo import run_demo
from vla_data.loader import LoaderConfig
from vla_data.shards import ShardDataset
from vla_data.view import ViewApp, ViewServer, export_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 30  # seconds for a page element (the machine is shared and loaded)


def _browser(tmp_path: Path):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if missing:
        message = f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install them (.ci/run does)")
        pytest.skip(message)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    return run_demo(tmp_path_factory.mktemp("view_browser_demo"), echo=lambda _: None)


@pytest.fixture
def browser(tmp_path):
    driver = _browser(tmp_path)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = WAIT):
    """Poll a JS expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        if time.monotonic() > deadline:
            error = driver.execute_script(
                "const e = document.querySelector('.error'); return e && e.textContent"
            )
            raise AssertionError(f"timed out waiting for {script!r}; page error: {error}")
        time.sleep(0.1)


def wait_page(driver, hash_: str) -> None:
    """Wait until the page for `hash_` is rendered (the app marks the body when it shows a page)."""
    wait_for(driver, f"document.body.dataset.ready === {json.dumps(hash_)}")


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
    if folder := os.environ.get("VLA_VIEW_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)
    return path


def check_episode_plays(driver, ds: ShardDataset, episode: int, *, pixels: bool = True) -> None:
    """The player shows the episode's frames, plots every action dim and advances when playing.

    `pixels`: also compare the canvas contents (a page opened from disk cannot read them back:
    file:// images taint the canvas), else the frame number each canvas last drew."""
    length = int(ds.episode_length[episode])
    wait_page(driver, f"#/d/0/episode/{episode}")
    wait_for(driver, f"document.querySelector('#player[data-length=\"{length}\"]')")
    names = [f for f, feature in ds.features.items() if feature.kind == "image"]
    cameras = driver.execute_script(
        "return [...document.querySelectorAll('canvas.camera')].map(c => c.dataset.camera)"
    )
    assert cameras == names
    assert driver.find_element("id", "scrub").get_attribute("max") == str(length - 1)
    dims = ds.features["action"].shape[0]
    lines = "document.querySelectorAll('svg.plot[data-feature=\"action\"] polyline.dim').length"
    assert driver.execute_script(f"return {lines}") == dims
    wait_for(driver, "document.querySelector('canvas.camera').dataset.frame === '0'")  # frame 0 drawn
    read = "return document.querySelector('canvas.camera')" + (".toDataURL()" if pixels else ".dataset.frame")
    before = driver.execute_script(read)
    driver.find_element("id", "play").click()
    wait_for(driver, "+document.getElementById('player').dataset.frame >= 10")
    wait_for(driver, "+document.querySelector('canvas.camera').dataset.frame > 0")
    after = driver.execute_script(read)
    assert after != before  # the canvas shows a later frame
    driver.find_element("id", "play").click()  # pause
    frame = driver.execute_script("return document.getElementById('player').dataset.frame")
    time.sleep(0.3)
    assert driver.execute_script("return document.getElementById('player').dataset.frame") == frame
    # dims are selectable: unticking one removes its curve
    driver.find_element("css selector", '.series[data-feature="action"] input[data-dim="0"]').click()
    assert driver.execute_script(f"return {lines}") == dims - 1


def check_batch(driver, config: LoaderConfig, n: int) -> None:
    wait_page(driver, f"#/batch/{n}")
    rows = driver.execute_script("return document.querySelectorAll('#batch-samples tr.clickable').length")
    assert rows == config.batch_size
    slots = driver.execute_script(
        "return [...document.querySelectorAll('img.slot')].map(i => i.dataset.slot)"
    )
    assert slots == list(config.image_slots)
    wait_for(
        driver, "[...document.querySelectorAll('img.slot')].every(i => i.complete && i.naturalWidth > 0)"
    )
    size = driver.execute_script(
        "const i = document.querySelector('img.slot'); return [i.naturalHeight, i.naturalWidth]"
    )
    assert size == list(config.image_size)
    side = wait_for(
        driver,
        "document.getElementById('attention').complete && document.getElementById('attention').naturalWidth",
    )
    assert side == config.max_tokens + config.horizon
    spans = driver.execute_script("return document.querySelectorAll('#tokens .tok').length")
    fast = driver.execute_script("return document.querySelectorAll('#tokens .tok.fast').length")
    assert spans > fast > 0  # sample 0 of the demo's batches is a robot sample with FAST tokens


def test_dataset_episode_and_batch_pages(demo, browser, tmp_path):
    ds = ShardDataset(demo["dataset"])
    config = LoaderConfig.load(demo["loader"])
    with ViewServer(ViewApp(demo["loader"]), port=0) as server:
        browser.get(server.url + "#/d/0")
        wait_page(browser, "#/d/0")
        wait_for(browser, "document.querySelectorAll('#episodes a').length")
        links = browser.execute_script(
            "return [...document.querySelectorAll('#episodes a')].map(a => a.textContent)"
        )
        assert links == [f"episode {e}" for e in range(ds.num_episodes)]
        wait_for(browser, "document.querySelectorAll('.hist-cell svg').length")
        stats_rows = browser.execute_script(
            "return document.querySelectorAll('table.stats[data-feature=\"action\"] tr').length"
        )
        assert stats_rows == 1 + ds.features["action"].shape[0]
        screenshot(browser, tmp_path, "view-dataset")

        browser.find_element("link text", "episode 1").click()
        check_episode_plays(browser, ds, 1)
        recon = "document.querySelectorAll('svg.plot[data-feature=\"action\"] polyline.recon').length"
        assert browser.execute_script(f"return {recon}") == ds.features["action"].shape[0] - 1
        browser.execute_script("window.scrollTo(0, 0)")
        screenshot(browser, tmp_path, "view-episode")

        browser.get(server.url + "#/batch/0")
        check_batch(browser, config, 0)
        screenshot(browser, tmp_path, "view-batch")
        browser.find_element("id", "next-batch").click()
        check_batch(browser, config, 1)

        browser.get(server.url + "#/d/1/sample/3")
        wait_page(browser, "#/d/1/sample/3")
        wait_for(browser, "document.querySelectorAll('.turn').length")
        turns = browser.execute_script(
            "return [...document.querySelectorAll('.turn')].map(t => t.textContent)"
        )
        expected = json.loads(server.app.get("api/d/1/sample/3").body)["turns"]
        assert turns == [t["role"] + t["text"] for t in expected]
        wait_for(
            browser,
            "document.querySelector('.boxed img').complete && document.querySelector('.boxed img').naturalWidth",
        )
        screenshot(browser, tmp_path, "view-web-sample")


def test_web_sample_pages(browser, tmp_path):
    """Several images, the turns in order, and boxes drawn over their image with their labels."""
    from tests.test_view import write_web_datasets

    web = write_web_datasets(tmp_path / "web")
    with ViewServer(ViewApp(web["llava"]), port=0) as server:
        browser.get(server.url + "#/d/0/sample/0")
        wait_page(browser, "#/d/0/sample/0")
        wait_for(
            browser, "[...document.querySelectorAll('.boxed img')].every(i => i.complete && i.naturalWidth)"
        )
        sizes = browser.execute_script(
            "return [...document.querySelectorAll('.boxed img')].map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert sizes == [[64, 32], [48, 48]]
        turns = browser.execute_script(
            "return [...document.querySelectorAll('.turn')].map(t => [t.className, t.lastChild.textContent])"
        )
        assert turns == [
            ["turn user", "What differs?"],
            ["turn assistant", "The brightness."],
            ["turn user", "Which is darker?"],
            ["turn assistant", "The second."],
        ]
        screenshot(browser, tmp_path, "view-web-chat")
    with ViewServer(ViewApp(web["ref"]), port=0) as server:
        browser.get(server.url + "#/d/0/sample/0")
        wait_page(browser, "#/d/0/sample/0")
        boxes = browser.execute_script(
            "return [...document.querySelectorAll('.boxed rect.box')].map(r => "
            "['x', 'y', 'width', 'height'].map(a => +r.getAttribute(a)))"
        )
        assert boxes == [[8, 8, 24, 16]]  # pixels of the stored image, drawn in its coordinates
        labels = browser.execute_script(
            "return [...document.querySelectorAll('.boxed text')].map(t => t.textContent)"
        )
        assert labels == ["bright half"]
        screenshot(browser, tmp_path, "view-web-boxes")


def test_static_export_opens_from_disk(demo, browser, tmp_path):
    ds = ShardDataset(demo["dataset"])
    index = export_site(ViewApp(demo["loader"]), tmp_path / "site", episodes=(2,), batches=1)
    browser.get(index.as_uri() + "#/d/0/episode/2")
    check_episode_plays(browser, ds, 2, pixels=False)
    browser.get(index.as_uri() + "#/batch/0")
    check_batch(browser, LoaderConfig.load(demo["loader"]), 0)
    assert browser.find_element("id", "next-batch").get_attribute("disabled")  # batch 1 was not exported
    browser.get(index.as_uri() + "#/d/0/episode/3")
    wait_page(browser, "#/d/0/episode/3")
    wait_for(browser, "document.querySelector('.error')")
    assert "not part of this export" in browser.find_element("css selector", ".error").text
