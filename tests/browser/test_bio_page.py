"""A published bio page in a real browser: served by a real edge process, at phone and desktop widths.

Set ``LINKEDGE_SCREENSHOTS=docs`` to write the screenshots used by the README
(``docs/bio-phone.png``, ``docs/bio-desktop.png``); otherwise they go to the test's temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import publish, sync_link
from tests.browser.conftest import ROOT

pytestmark = pytest.mark.browser


def wait_for(driver: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_blocks_render_in_order_and_a_click_lands_through_the_edge(
    make_api, env, edge_url: str, destination: tuple[str, list[str]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    site, seen = destination
    api = make_api()
    link_id = api.add_link("promo", f"{site}/via-short-link")
    sync_link(env, "promo")
    publish(
        api,
        {
            "handle": "demo",
            "display_name": "Demo <Shop>",
            "headline": "Everything, one link.",
            "theme": {"palette": "dark", "accent": "#22c55e", "button_style": "pill"},
            "blocks": [
                {"type": "header", "label": "Start here", "sort_order": 0},
                {"type": "link", "label": "Visit the shop", "url": f"{site}/shop", "sort_order": 1},
                {"type": "link", "label": "Tracked promo", "link_id": link_id, "sort_order": 2},
                {"type": "text", "label": "We ship worldwide.", "sort_order": 3},
                {"type": "link", "label": "Hidden", "url": f"{site}/hidden", "is_active": False, "sort_order": 4},
                {"type": "social", "url": "https://github.com/demo", "sort_order": 5},
                {"type": "form", "label": "Newsletter", "sort_order": 6},
            ],
        },
    )
    browser.set_window_size(375, 812)
    browser.get(f"{edge_url}/@demo")

    assert browser.find_element(By.TAG_NAME, "h1").text == "Demo <Shop>"
    blocks = browser.find_elements(By.CSS_SELECTOR, "[data-block]")
    shown = [el.text.strip() or el.get_attribute("aria-label") for el in blocks]  # what a visitor sees
    assert shown[:5] == ["START HERE", "Visit the shop", "Tracked promo", "We ship worldwide.", "GitHub"]
    assert shown[5].startswith("Newsletter") and shown[5].endswith("Subscribe") and len(shown) == 6
    assert blocks[5].find_element(By.NAME, "email").is_displayed()
    tops = [el.location["y"] for el in blocks]
    assert tops == sorted(tops)  # and in that order down the page
    assert browser.find_elements(By.TAG_NAME, "script") == []
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 375  # nothing overflows sideways on a phone
    button = browser.find_element(By.LINK_TEXT, "Visit the shop")
    assert button.size["width"] > 300 and button.size["height"] >= 48  # full-width, thumb-sized
    # The page made no request of its own: no images, fonts, scripts or styles from anywhere.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    button.click()
    wait_for(browser, lambda d: d.current_url == f"{site}/shop")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Destination /shop"

    browser.get(f"{edge_url}/@demo")
    browser.find_element(By.LINK_TEXT, "Tracked promo").click()
    wait_for(browser, lambda d: d.current_url == f"{site}/via-short-link")
    assert [p for p in seen if p != "/favicon.ico"] == ["/shop", "/via-short-link"]


def test_themed_page_screenshots(make_api, edge_url: str, browser: Any, tmp_path: Path) -> None:
    api = make_api()
    publish(
        api,
        {
            "handle": "acme",
            "display_name": "Acme Co.",
            "headline": "Everything Acme, one link.",
            "bio": "Product updates, support, and the latest drop.",
            "theme": {"palette": "midnight", "accent": "#6366f1", "button_style": "pill"},
            "seo": {"title": "Acme", "description": "All of Acme in one place."},
            "blocks": [
                {"type": "social", "icon": "instagram", "url": "https://instagram.com/acme"},
                {"type": "social", "url": "https://x.com/acme"},
                {"type": "social", "url": "https://github.com/acme"},
                {"type": "social", "url": "https://youtube.com/@acme"},
                {"type": "social", "url": "https://tiktok.com/@acme"},
                {"type": "header", "label": "Start here"},
                {"type": "link", "label": "Latest drop", "url": "https://acme.example/new"},
                {"type": "link", "label": "Shop the collection", "url": "https://acme.example/shop"},
                {"type": "link", "label": "Support & FAQ", "url": "https://acme.example/help"},
                {"type": "text", "label": "About us",
                 "config": {"text": "Small team, big ideas. Shipping worldwide from Lisbon."}},
                {"type": "form", "label": "Get the newsletter",
                 "config": {"fields": ["email"], "button_text": "Subscribe"}},
            ],
        },
    )  # fmt: skip
    target = ROOT / "docs" if os.environ.get("LINKEDGE_SCREENSHOTS") == "docs" else tmp_path
    target.mkdir(exist_ok=True)
    for name, width in (("bio-phone.png", 375), ("bio-desktop.png", 1280)):
        browser.set_window_size(width, 900)
        browser.get(f"{edge_url}/@acme")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        # The whole page in one picture: make the viewport as tall as the document.
        height = browser.execute_script("return document.documentElement.scrollHeight")
        metrics = {"width": width, "height": max(height, 800), "deviceScaleFactor": 1, "mobile": width < 500}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        assert browser.save_screenshot(str(target / name))
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        assert (target / name).stat().st_size > 10_000
