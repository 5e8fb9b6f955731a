"""Theme tokens of bio pages: palettes, accents, button styles and fonts.

Only values from these tables (and an accent that matched ``ACCENT_RE``) ever reach the page's CSS,
so a theme can never inject a style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Palette:
    bg: str  # page background (top of the gradient)
    bg2: str  # bottom of the gradient
    fg: str  # text
    muted: str  # secondary text
    card: str  # button / card surface
    card_fg: str
    border: str
    accent: str  # default accent when the theme names none
    scheme: str  # light | dark: the browser's form controls follow it


PALETTES: dict[str, Palette] = {
    "light": Palette("#f7f7fb", "#eceef6", "#15171f", "#575d6e", "#ffffff", "#15171f", "#dfe2ec", "#4f46e5", "light"),
    "dark": Palette("#111318", "#1b1e26", "#f2f3f7", "#a3a8b8", "#20242e", "#f2f3f7", "#2e3340", "#818cf8", "dark"),
    "midnight": Palette("#0b1026", "#1c1446", "#eef0ff", "#a9b0d6", "#1a2046", "#eef0ff", "#2b3366", "#8b93ff", "dark"),
    "sunset": Palette("#fff4ec", "#ffd9c7", "#3b1d12", "#7a4a38", "#ffffff", "#3b1d12", "#f3c9b4", "#e4572e", "light"),
    "forest": Palette("#0f1f17", "#16311f", "#eaf5ee", "#9fbfaa", "#19362a", "#eaf5ee", "#29503c", "#4ade80", "dark"),
    "ocean": Palette("#eef7fb", "#d3ebf5", "#0c2a3a", "#44677a", "#ffffff", "#0c2a3a", "#c3dfeb", "#0284c7", "light"),
    "rose": Palette("#fff1f3", "#fbd5dc", "#3d0f1c", "#7d4150", "#ffffff", "#3d0f1c", "#f4c2cc", "#e11d48", "light"),
    "sand": Palette("#f8f3ea", "#eee3cf", "#2f2718", "#6d604a", "#fffdf8", "#2f2718", "#e2d5bd", "#b45309", "light"),
    "mono": Palette("#ffffff", "#ffffff", "#000000", "#555555", "#ffffff", "#000000", "#000000", "#000000", "light"),
}
PALETTE_ALIASES = {"default": "light", "white": "light", "black": "dark", "night": "midnight"}
DEFAULT_PALETTE = "light"

BUTTON_STYLES = {"pill": "999px", "rounded": "14px", "square": "0", "outline": "14px"}
DEFAULT_BUTTON_STYLE = "rounded"

FONTS = {
    "system": 'system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif',
    "serif": 'ui-serif,Georgia,Cambria,"Times New Roman",serif',
    "mono": 'ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace',
    "rounded": 'ui-rounded,"SF Pro Rounded","Nunito","Segoe UI",system-ui,sans-serif',
}
DEFAULT_FONT = "system"

ACCENT_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def palette_name(value: str) -> str | None:
    """The canonical palette for a name (case-insensitive, aliases allowed), or None if unknown."""
    name = value.strip().lower()
    name = PALETTE_ALIASES.get(name, name)
    return name if name in PALETTES else None


def normalise_accent(value: str) -> str | None:
    """``#abc`` → ``#aabbcc``, lower case; None when it is not a hex colour."""
    if not ACCENT_RE.fullmatch(value):
        return None
    hex_digits = value[1:].lower()
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    return "#" + hex_digits


def readable_on(colour: str) -> str:
    """Text colour for ``colour``: white down to 4:1 (white on mid tones reads better than its WCAG ratio
    says, as APCA models), else whichever of black and white contrasts more."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_white, on_black = 1.05 / (luminance + 0.05), (luminance + 0.05) / 0.05
    return "#ffffff" if on_white >= 4.0 or on_white >= on_black else "#111111"


@dataclass(frozen=True)
class Theme:
    """Resolved tokens for rendering."""

    palette_name: str
    palette: Palette
    accent: str
    accent_fg: str
    button_style: str
    radius: str
    font: str


def resolve(theme: dict[str, object]) -> Theme:
    """Stored theme tokens → what the template uses, with defaults for anything missing or unknown."""
    raw_palette = theme.get("palette")
    name = palette_name(raw_palette) if isinstance(raw_palette, str) else None
    name = name or DEFAULT_PALETTE
    palette = PALETTES[name]
    raw_accent = theme.get("accent")
    accent = normalise_accent(raw_accent) if isinstance(raw_accent, str) else None
    accent = accent or palette.accent
    style = theme.get("button_style")
    style = style if isinstance(style, str) and style in BUTTON_STYLES else DEFAULT_BUTTON_STYLE
    font = theme.get("font")
    font = font if isinstance(font, str) and font in FONTS else DEFAULT_FONT
    return Theme(name, palette, accent, readable_on(accent), style, BUTTON_STYLES[style], FONTS[font])
