"""Swagger UI in a real browser: `make browser-test` (Debian's chromium + chromium-driver).

Opens /docs in headless Chromium, runs "Try it out" on each model's example request and sees
a 200 with predictions in the page. Not part of `make test` (it needs the browser packages).
"""

from __future__ import annotations

import pytest

from tests.server import running_server


@pytest.mark.parametrize("path", ["/models/mnist/serving_default/predict",
                                  "/models/imdb_sentiment/predict_text/predict",
                                  "/models/inception_v3/predict_image/predict"])
def test_try_it_out_runs_the_example(models_dir, browser, tmp_path, path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with running_server(models_dir, poll_interval_s=0) as url:
        browser.get(f"{url}/docs")
        wait = WebDriverWait(browser, 60)
        block = wait.until(lambda d: d.find_element(
            By.XPATH, f"//span[@data-path='{path}']/ancestor::div[contains(@class,'opblock ')]"))
        try:
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
            wait.until(lambda _: block.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
            wait.until(lambda _: block.find_element(By.CSS_SELECTOR, ".execute")).click()
            status = wait.until(lambda _: block.find_element(
                By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"))
            body = block.find_element(
                By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_description pre")
            assert status.text.strip().startswith("200"), status.text
            assert '"predictions"' in body.text
        finally:
            browser.save_screenshot(str(tmp_path / "page.png"))
            print(f"screenshot: {tmp_path / 'page.png'}")
