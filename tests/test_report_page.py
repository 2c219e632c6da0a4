"""The page template `dvc plots show` fills: it works offline and it reports what fails to render."""

from __future__ import annotations

import configparser

import pytest

import browser
from conftest import ROOT

PAGE = ROOT / "report" / "page.html"


def test_dvc_uses_the_offline_page():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    assert (ROOT / ".dvc" / config["plots"]["html_template"]).resolve() == PAGE
    text = PAGE.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "cdn." not in text and "https://" not in text.split("<!-- vega ")[0]


VEGA_LITE_BAR = ('{"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "data": {"values": [{"a": 1}]}, '
                 '"mark": "bar", "encoding": {"x": {"field": "a", "type": "quantitative"}}}')


def _page(tmp_path, divs: str):
    page = tmp_path / "index.html"
    page.write_text(PAGE.read_text(encoding="utf-8").replace("{plot_divs}", divs).replace("{refresh_tag}", ""))
    return page


def test_a_plot_renders_without_any_network(tmp_path):
    page = _page(tmp_path, f'<div id="p"><script>vegaEmbed("#p", {VEGA_LITE_BAR});</script></div>')
    document = browser.dom(page)
    assert browser.rendered_plots(document) == 1
    assert browser.page_errors(document) == [] and 'data-loaded="true"' in document


@pytest.mark.parametrize("div, message", [
    ('<div id="i"><img src="static/missing.png"></div>', "image not found: static/missing.png"),
    ('<div id="p"><script>vegaEmbed("#p", {"mark": {"type": "nonsense"}});</script></div>', "plot failed"),
    ('<div id="s"><script>undefinedFunction();</script></div>', "undefinedFunction"),
])
def test_failures_are_listed_on_the_page(tmp_path, div, message):
    errors = browser.page_errors(browser.dom(_page(tmp_path, div)))
    assert any(message in e for e in errors), errors
