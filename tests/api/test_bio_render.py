"""The rendered public page: inert user text, allowlisted embeds, themes, SEO, no scripts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from api.serving.embeds import embed_for
from tests.api.support import Api, data, error_fields, publish

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
EVIL_URL = 'https://evil.example/"><script>alert(3)</script>'


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: bytes) -> Tags:
    tags = Tags()
    tags.feed(html.decode())
    return tags


def test_xss_in_every_user_field_is_inert(api: Api, cache) -> None:
    publish(
        api,
        {
            "handle": "xss",
            "display_name": XSS[:100],
            "headline": XSS,
            "bio": XSS,
            "avatar_path": EVIL_URL,
            "theme": {"palette": "dark", "note": "</style><script>alert(4)</script>"},
            "seo": {"title": XSS, "description": XSS, "image": EVIL_URL},
            "blocks": [
                {"type": "header", "label": XSS},
                {"type": "link", "label": XSS, "url": EVIL_URL, "icon": "github"},
                {"type": "text", "label": XSS, "config": {"text": XSS}},
                {"type": "social", "label": XSS, "url": EVIL_URL},
                {"type": "embed", "label": XSS, "url": EVIL_URL},
                {"type": "embed", "label": XSS, "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ&x=<script>"},
                {"type": "image", "label": XSS, "url": EVIL_URL, "config": {"alt": XSS, "href": EVIL_URL}},
                {"type": "form", "label": XSS, "config": {"button_text": "<b>go</b>", "fields": ["email"]}},
                {"type": "link", "label": "extra", "url": "https://a.example", "config": {"onclick": XSS}},
            ],
        },
    )
    record = cache("xss")
    assert record is not None
    html = record.html.decode()
    lowered = html.lower()
    assert "<script" not in lowered and "javascript:" not in lowered and "<b>go" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "alert(4)" not in html  # unknown theme tokens never reach the page
    tags = parse(record.html)
    assert not [(t, a) for t, a in tags.tags for name in a if name.startswith("on")]
    assert {t for t, _ in tags.tags} <= {
        "html", "head", "meta", "title", "link", "style", "body", "main", "header", "img", "h1", "p", "ul", "li",
        "a", "span", "svg", "path", "rect", "circle", "h2", "div", "nav", "iframe", "figure", "figcaption", "form",
        "label", "input", "textarea", "button", "footer",
    }  # fmt: skip
    for a in tags.all("a"):
        assert (a["href"] or "").startswith("/@xss/b/")
    assert [f["src"] for f in tags.all("iframe")] == ["https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"]
    for img in tags.all("img"):
        assert img["src"] == EVIL_URL and img["width"] and img["height"]
    style = html[html.index("<style>") : html.index("</style>")]
    assert "<" not in style[len("<style>") :]


def test_accent_can_never_inject_css(api: Api) -> None:
    for accent in ("#fff;}body{x:y", "red", "#12345", "#ggg", "expression(alert(1))", "#fff\n"):
        response = api.post("/bio-pages", json={"theme": {"accent": accent}})
        assert error_fields(response) == ["theme.accent"], accent


@pytest.mark.parametrize(
    ("url", "src"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ?t=3", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
        ("https://youtube.com/shorts/dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
        ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871?dnt=1"),
        (
            "https://open.spotify.com/track/4cOdK2wGLETKBW3PvgPWqT",
            "https://open.spotify.com/embed/track/4cOdK2wGLETKBW3PvgPWqT",
        ),
        (
            "https://soundcloud.com/artist/track-name",
            "https://w.soundcloud.com/player/?url=https%3A%2F%2Fsoundcloud.com%2Fartist%2Ftrack-name"
            "&visual=false&show_comments=false",
        ),
        ("https://www.youtube.com/watch?v=short", None),
        ("https://evil.example/embed/dQw4w9WgXcQ", None),
        ("https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ", None),
        ("https://vimeo.com/76979871/../../evil", None),
    ],
)
def test_embeds_come_only_from_the_allowlist(url: str, src: str | None) -> None:
    found = embed_for(url)
    assert (found.src if found else None) == src


def test_blocks_render_in_order_with_themes_seo_and_lazy_images(api: Api, cache) -> None:
    page = publish(
        api,
        {
            "handle": "themed",
            "display_name": "Themed",
            "headline": "Hello",
            "avatar_url": "https://cdn.example/me.png",
            "theme": {"palette": "light", "accent": "#0a7", "button_style": "outline"},
            "seo": {"title": "SEO title", "description": "SEO description"},
            "blocks": [
                {"type": "link", "label": "First", "url": "https://one.example", "sort_order": 2},
                {"type": "header", "label": "Zeroth", "sort_order": 0},
                {"type": "image", "url": "https://img.example/p.png", "config": {"width": 300, "height": 200},
                 "sort_order": 3},
                {"type": "embed", "label": "Not allowlisted", "url": "https://other.example/v/1", "sort_order": 4},
                {"type": "social", "url": "https://instagram.com/x", "sort_order": 1},
            ],
        },
    )  # fmt: skip
    record = cache("themed")
    assert record is not None
    html = record.html.decode()
    order = [html.index(s) for s in ("Zeroth", 'aria-label="Instagram"', "First", "img.example", "Not allowlisted")]
    assert order == sorted(order)
    assert "--accent:#00aa77" in html and "--bg:#f7f7fb" in html and 'class="page outline"' in html
    tags = parse(record.html)
    meta = {(m.get("property") or m.get("name")): m.get("content") for m in tags.all("meta")}
    assert meta["og:title"] == "SEO title" and meta["description"] == meta["og:description"] == "SEO description"
    assert meta["og:image"] == "https://cdn.example/me.png" and meta["og:url"] == page["html_url"]
    assert {"rel": "canonical", "href": "http://bio.test/themed"} in tags.all("link")
    image = [i for i in tags.all("img") if i["src"] == "https://img.example/p.png"][0]
    assert (image["width"], image["height"], image["loading"]) == ("300", "200", "lazy")
    assert not tags.all("iframe")
    assert "<svg" in html  # icons are inline

    dark = data(api.patch(f"/bio-pages/{page['id']}", json={"theme": {"palette": "dark"}}))
    assert dark["theme"]["palette"] == "dark" and dark["theme"]["accent"] == "#00aa77"
    assert "--bg:#111318" in cache("themed").html.decode()
