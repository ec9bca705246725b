"""The model pages (/ui) in headless Chromium: `make browser-test`.

Behind an API key, as a deployment would run them: the page asks for the key, then draws a
digit with pointer events, uploads a sample photo, types a review, and shows the warning of
a random-weights export. `TFSERVE_SCREENSHOTS=docs/ui` keeps a small PNG of each page.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.server import running_server

KEY = "ui-test-key"
SCREENSHOTS = os.environ.get("TFSERVE_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(models_dir):
    """The tiny models; TFSERVE_UI_MODELS_DIR=models for the screenshots of real ones."""
    chosen = Path(os.environ.get("TFSERVE_UI_MODELS_DIR") or models_dir)
    with running_server(chosen, poll_interval_s=0, api_key=KEY) as url:
        yield url


def wait(browser, seconds: float = 60):
    """Waits that outlast the page replacing a result while a newer answer arrives."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, ignored_exceptions=[StaleElementReferenceException])


def text_of(browser, css: str) -> str:
    """The element's text once it has some, read in the same breath as it is found."""
    from selenium.webdriver.common.by import By

    return wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, css).text)


def find(browser, css: str, seconds: float = 60):
    from selenium.webdriver.common.by import By

    return wait(browser, seconds).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def find_all(browser, css: str, count: int, seconds: float = 60) -> list:
    from selenium.webdriver.common.by import By

    return wait(browser, seconds).until(
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, css)) and len(found) >= count
        and found)


def open_page(browser, url: str, path: str) -> None:
    """Open `path` with the API key entered in the page's own field (sessionStorage)."""
    browser.get(url + path)
    field = find(browser, "#api-key")
    field.clear()
    field.send_keys(KEY + "\n")


def screenshot(browser, name: str) -> None:
    if not SCREENSHOTS:
        return
    from PIL import Image

    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1000, min(max(height + 40, 600), 2400))
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    image.thumbnail((640, 1600))
    image.quantize(96).save(folder / f"{name}.png", optimize=True)  # small: docs and README
    browser.set_window_size(1280, 2000)


def test_without_the_key_the_page_asks_for_it_and_then_lists_the_models(server, browser):
    browser.get(server + "/ui")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    assert "API key" in find(browser, "#main .error").text
    open_page(browser, server, "/ui")
    links = find_all(browser, ".models a", 5)
    assert {a.text for a in links} >= {"mnist", "cifar10", "imdb_sentiment", "inception_v3"}
    screenshot(browser, "ui-models")


def test_drawing_a_digit_gives_ten_probabilities(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, server, "/ui/mnist")
    canvas = find(browser, "canvas.digit")
    assert not browser.find_elements("css selector", "[data-testid=warning]")
    # a "7": a bar across the top, then down to the left, with pointer events
    chain = ActionChains(browser).move_to_element_with_offset(canvas, -60, -70).click_and_hold()
    for dx, dy in [(30, 0)] * 4 + [(-10, 25)] * 6:
        chain.move_by_offset(dx, dy).pause(0.02)
    chain.release().perform()
    from selenium.webdriver.common.by import By

    values = wait(browser).until(lambda d: [
        float(v.text.rstrip("%")) for v in d.find_elements(
            By.CSS_SELECTOR, "[data-testid=digit-result] .bars .value")] or None)
    assert len(values) == 10
    assert abs(sum(values) - 100) < 1.0, values
    assert text_of(browser, "[data-testid=digit-result] .verdict").startswith("Looks like")
    screenshot(browser, "ui-mnist")


def test_the_example_digit_is_one_keypress_away(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, server, "/ui/mnist")
    find(browser, "canvas.digit")
    button = browser.find_element(By.XPATH, "//button[text()='Use the example digit']")
    browser.execute_script("arguments[0].focus()", button)
    button.send_keys(Keys.ENTER)
    assert len(find_all(browser, "[data-testid=digit-result] .bars li", 10)) == 10


def test_a_photo_gets_three_labels_and_the_random_weights_warning(server, browser):
    import httpx

    random = httpx.get(server + "/models/inception_v3/card", headers={"X-API-Key": KEY}
                       ).json()["warning"]  # the tiny export has random weights
    open_page(browser, server, "/ui/inception_v3")
    if random:
        assert "random weights" in find(browser, "[data-testid=warning]").text
    else:
        assert not browser.find_elements("css selector", "[data-testid=warning]")
    find(browser, "input[type=file]").send_keys(str(SAMPLES / "images" / "umbrella.jpg"))
    from selenium.webdriver.common.by import By

    names = wait(browser).until(lambda d: [n.text for n in d.find_elements(
        By.CSS_SELECTOR, "[data-testid=photo-result] .bars .name")] or None)
    assert len(names) == 3 and all(names), names
    find(browser, ".drop img")
    screenshot(browser, "ui-inception_v3")


def test_typing_a_review_gives_a_probability(server, browser):
    open_page(browser, server, "/ui/imdb_sentiment")
    find(browser, "textarea").send_keys("A wonderful, moving film with a great cast.")
    assert text_of(browser, "[data-testid=text-result] .verdict") in ("positive", "negative")
    value = text_of(browser, "[data-testid=text-result] .bars .value")
    assert 0 <= float(value.rstrip("%")) <= 100
    screenshot(browser, "ui-imdb_sentiment")


def test_the_page_fits_a_phone_screen(server, browser):
    browser.set_window_size(390, 844)
    try:
        open_page(browser, server, "/ui/mnist")
        find(browser, "canvas.digit")
        find(browser, "section.panel h2")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow}px wider than the screen"
    finally:
        browser.set_window_size(1280, 2000)


def test_a_model_still_training_is_shown_as_such_and_followed(server, browser, models_dir):
    import json
    import time

    from app.models.trainer_status import STATUS_FILE

    status = Path(os.environ.get("TFSERVE_UI_MODELS_DIR") or models_dir) / STATUS_FILE

    def trainer_says(epoch: int) -> None:  # as training.serve writes it
        status.write_text(json.dumps({"updated": time.time(), "models": {
            "cifar10_large": {"state": "training", "epoch": epoch, "epochs": 5}}}))

    trainer_says(2)
    try:
        open_page(browser, server, "/ui")
        assert text_of(browser, "[data-testid=training]") == "training: epoch 2 of 5"
        screenshot(browser, "ui-training")
        open_page(browser, server, "/ui/cifar10_large")
        assert text_of(browser, "[data-testid=training]") == "training: epoch 2 of 5"
        trainer_says(3)  # the page looks again every 3 s while the model trains
        wait(browser, 15).until(lambda d: "epoch 3 of 5" in d.find_element(
            "css selector", "[data-testid=training]").text)
    finally:
        status.unlink(missing_ok=True)


def send_digits(url: str, pixels) -> None:
    import httpx
    import orjson

    for begin in range(0, len(pixels), 100):
        body = {"instances": [{"image_input": row} for row in pixels[begin:begin + 100]]}
        response = httpx.post(f"{url}/v1/models/mnist:predict", timeout=60,
                              content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                              headers={"X-API-Key": KEY})
        assert response.status_code == 200, response.text[:200]


def test_the_monitoring_panel_follows_the_traffic(server, browser):
    """Real MNIST test digits: the panel says ok with the live class bars beside the
    training ones; inverted digits then turn it to drift while the page stays open."""
    from training.data import load_mnist

    (_, _), (digits, _) = load_mnist()
    scaled = digits[1::15].reshape(-1, 784) / 255.0  # 667, spread over the split
    send_digits(server, scaled)
    open_page(browser, server, "/ui/mnist")
    panel = '[data-testid=monitoring] [data-signature="serving_default"]'
    wait(browser).until(lambda d: "ok" in d.find_element(
        "css selector", f"{panel} h3 .state").text)
    bars = find_all(browser, f"{panel} .compare li", 10)
    assert [b.find_element("css selector", ".name").text for b in bars[:10]] == \
        [str(d) for d in range(10)]
    screenshot(browser, "ui-monitoring")
    send_digits(server, 1 - np.concatenate([scaled] * 3))
    wait(browser, 30).until(lambda d: "drift" in d.find_element(
        "css selector", f"{panel} h3 .state").text)
    rows = find_all(browser, f"{panel} .scores tr", 6)
    assert any("image_input.pixels" in r.text and "drift" in r.text for r in rows)
