"""The explore page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by selenium.

It pages through seeds, opens a face, picks faces and sees the morph strip, moves a slider and sees the face
change, resets it, chooses a checkpoint, reloads a copied link and sees the same state, and sends bad parameters
to every endpoint (a 4xx each, the server still serving). Nothing is downloaded: the driver is
/usr/bin/chromedriver (``.ci/run`` installs it when missing).

``PGGAN_EXPLORE_SCREENSHOT=docs/explore.png`` also saves a screenshot there (the README's picture), and
``PGGAN_EXPLORE_RUN=checkpoints/demo`` runs the same test on that run directory instead of a tiny random one
(``make explore-screenshot`` does both, after ``make demo``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.explore_helpers import get, serving, tiny_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 90  # seconds: generous, for a machine shared with other jobs

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
if not CHROMEDRIVER.exists() or not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PIXELS = """
const img = arguments[0], canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
canvas.getContext("2d").drawImage(img, 0, 0);
return canvas.toDataURL();
"""
ALL_LOADED = "return [...document.querySelectorAll(arguments[0])].every(i => i.dataset.state === 'loaded')"
FETCH_STATUSES = """
const done = arguments[arguments.length - 1];
Promise.all(arguments[0].map(url => fetch(url).then(async r => [r.status, await r.text()])))
  .then(done, error => done(String(error)));
"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400",
                     "--disable-gpu", "--no-first-run", "--disable-extensions", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, message: str):
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, message)


def loaded(driver, selector: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, selector)) and driver.execute_script(ALL_LOADED, selector)


def wait_loaded(driver, *selectors: str) -> None:
    for selector in selectors:
        wait(driver, lambda d, s=selector: loaded(d, s), f"images {selector} never finished loading")


def captions(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#grid .tile .seed")]


def tile(driver, seed: int):
    return driver.find_element(By.CSS_SELECTOR, f'#grid .tile[data-seed="{seed}"]')


def checkpoint_of(img) -> str:
    """The checkpoint an image was asked from (its address's ``checkpoint=`` value)."""
    return img.get_attribute("data-url").split("checkpoint=")[1].split("&")[0]


def face_pixels(driver) -> str:
    return driver.execute_script(PIXELS, driver.find_element(By.ID, "face-image"))


def snapshot(driver) -> dict:
    """What a user sees: page, opened face and its pixels, picks, strip, sliders, checkpoint."""
    wait_loaded(driver, "#grid img", "#face-image", "#strip img", "#timeline img")
    sliders = driver.find_elements(By.CSS_SELECTOR, "#sliders input")
    return {
        "captions": captions(driver),
        "face": driver.find_element(By.ID, "face-seed").text,
        "face_url": driver.find_element(By.ID, "face-image").get_attribute("data-url"),
        "face_pixels": face_pixels(driver),
        "picked": [e.get_attribute("data-seed") for e in driver.find_elements(By.CSS_SELECTOR, "#grid .tile.picked")],
        "strip": [e.get_attribute("data-url") for e in driver.find_elements(By.CSS_SELECTOR, "#strip img")],
        "sliders": {e.get_attribute("data-direction"): e.get_attribute("value") for e in sliders},
        "checkpoint": Select(driver.find_element(By.ID, "checkpoint")).first_selected_option.get_attribute("value"),
    }


def test_browse_open_pick_morph_edit_link_and_bad_requests_in_chromium(browser, tmp_path):
    driver = browser
    demo = os.environ.get("PGGAN_EXPLORE_RUN")
    source = Path(demo) if demo else tiny_run(tmp_path)
    directions = [] if demo else [f"smile={tmp_path / 'smile.npy'}"]
    with serving(source, directions=directions) as (server, base):
        info = server.explorer.info()
        resolution, ids = info["resolution"], [c["id"] for c in info["checkpoints"]]
        driver.get(base + "/")
        wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "no page")
        wait_loaded(driver, "#grid img")
        assert captions(driver) == [f"seed {s}" for s in range(16)]
        assert "rendering" not in driver.find_element(By.ID, "status-text").text

        # page through the seeds, and jump
        driver.find_element(By.ID, "next").click()
        wait(driver, lambda d: captions(d)[0] == "seed 16", "next did not page")
        wait_loaded(driver, "#grid img")
        assert "start=16" in driver.current_url
        driver.find_element(By.ID, "prev").click()
        wait(driver, lambda d: captions(d)[0] == "seed 0", "previous did not page")
        driver.find_element(By.ID, "jump-seed").send_keys("1000", Keys.ENTER)
        wait(driver, lambda d: captions(d) == [f"seed {s}" for s in range(1000, 1016)], "jump did not go to 1000")
        wait_loaded(driver, "#grid img")
        first_tiles = [e.get_attribute("data-url") for e in driver.find_elements(By.CSS_SELECTOR, "#grid img")]
        assert first_tiles[3].startswith("image.png?seed=1003&")

        # open a face: full resolution, a download named by its seed
        tile(driver, 1003).find_element(By.TAG_NAME, "img").click()
        wait_loaded(driver, "#face-image")
        image = driver.find_element(By.ID, "face-image")
        assert driver.execute_script("return arguments[0].naturalWidth", image) == resolution
        assert driver.find_element(By.ID, "face-seed").text == "seed 1003"
        download = driver.find_element(By.ID, "download")
        assert download.get_attribute("download") == "seed01003.png"
        status, _, body = get(base, "/" + download.get_attribute("href").split("/", 3)[3])
        assert status == 200 and body == get(base, f"/image.png?seed=1003&checkpoint={info['checkpoint']}")[2]
        assert "selected" in tile(driver, 1003).get_attribute("class")

        # pick three faces: the morph strip runs through them, the export link names them
        assert driver.find_elements(By.CSS_SELECTOR, "#strip img") == []
        for seed in (1001, 1002, 1007):
            tile(driver, seed).find_element(By.CSS_SELECTOR, ".pick").click()
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#strip img")) == 9, "no 2×4+1-frame strip")
        wait_loaded(driver, "#strip img")
        keys = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#strip figure.key figcaption")]
        assert keys == ["seed 1001", "seed 1002", "seed 1007"]
        strip = [driver.execute_script(PIXELS, e) for e in driver.find_elements(By.CSS_SELECTOR, "#strip img")]
        assert len(set(strip)) == 9  # every frame a different face
        export = driver.find_element(By.ID, "export").get_attribute("href")
        assert "morph.mp4?seeds=1001%2C1002%2C1007" in export
        assert "pick=1001%2C1002%2C1007" in driver.current_url

        # a slider re-renders the opened face; reset brings it back
        plain = face_pixels(driver)
        slider = driver.find_element(By.CSS_SELECTOR, 'input[data-direction="sefa:0"]')
        slider.send_keys(Keys.END)  # the keyboard, as a user would: all the way up
        wait(driver, lambda d: "direction=sefa%3A0&strength=5" in image.get_attribute("data-url"), "no re-render")
        wait_loaded(driver, "#face-image")
        assert face_pixels(driver) != plain
        assert "direction=sefa%3A0&strength=5" in driver.current_url
        assert "edited" in driver.find_element(By.ID, "download").get_attribute("download")
        driver.find_element(By.ID, "reset").click()
        wait(driver, lambda d: "direction" not in image.get_attribute("data-url"), "reset did not reset")
        wait_loaded(driver, "#face-image")
        assert face_pixels(driver) == plain and slider.get_attribute("value") == "0"
        for _ in range(15):
            slider.send_keys(Keys.ARROW_RIGHT)  # 1.5, by steps of 0.1
        wait(driver, lambda d: "strength=1.5" in image.get_attribute("data-url"), "arrow keys did not edit")

        # an earlier checkpoint: the same seeds as they looked then
        if len(ids) > 1:
            Select(driver.find_element(By.ID, "checkpoint")).select_by_value(ids[0])
            wait(driver, lambda d: checkpoint_of(d.find_element(By.CSS_SELECTOR, "#grid img")) == ids[0],
                 "the checkpoint chooser changed nothing")  # fmt: skip
            wait_loaded(driver, "#grid img", "#timeline img")
            assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline img")) == len(ids)
            current = driver.find_element(By.CSS_SELECTOR, "#timeline figure.current")
            assert current.get_attribute("data-checkpoint") == ids[0]
            assert f"checkpoint={ids[0]}" in driver.current_url

        # a copied link shows the same state
        before = snapshot(driver)
        link = driver.current_url
        driver.get("about:blank")
        driver.get(link)
        wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "no page")
        after = snapshot(driver)
        assert after == before
        assert after["sliders"]["sefa:0"] == "1.5" and after["face"] == "seed 1003 (edited)"

        # bad parameters to every endpoint: a 4xx and a one-line reason each, and the page still works
        bad = ["image.png?seed=-1", "image.png?seed=1&direction=sefa:0&strength=1e9", "image.png?seed=1&checkpoint=x",
               "image.png?seed=1&direction=nope&strength=1", "morph.png?seeds=1&frames=3",
               "morph.png?seeds=1,2&frames=1000", "morph.mp4?seeds=1,2&seconds=999", "api/info?debug=1",
               "nowhere"]  # fmt: skip
        answers = driver.execute_async_script(FETCH_STATUSES, bad)
        assert all(400 <= status < 500 and text.count("\n") == 1 for status, text in answers), answers
        assert driver.execute_async_script(FETCH_STATUSES, ["api/info"])[0][0] == 200
        driver.find_element(By.ID, "next").click()
        wait(driver, lambda d: captions(d)[0] == "seed 1016", "the page stopped working")
        wait_loaded(driver, "#grid img")

        screenshot = os.environ.get("PGGAN_EXPLORE_SCREENSHOT")
        if screenshot:
            take_screenshot(driver, link, ids, Path(screenshot))


def take_screenshot(driver, link: str, ids: list[str], path: Path) -> None:
    """The README's picture: the copied link's state at the run's default checkpoint, the whole page in view."""
    driver.get(link.replace(f"checkpoint={ids[0]}", "checkpoint=latest") if "latest" in ids else link)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "no page")
    height, frame = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1280, height + frame)  # the whole page in view, no scroll bar
    snapshot(driver)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path))
