"""A screenshot of the try page (:mod:`kdutils.serving.page`), as the README shows it.

    python -m kdutils.serving.page_shot --run outputs/smoke --out docs/try_page.png [--models all] [--text "..."]
    make page-shot PROFILE=smoke

Starts the server of ``--run`` on a free loopback port, opens its page in Debian's headless
Chromium (``/usr/bin/chromium``, ``make sysdeps``) through Playwright's Python package (the dev
extra; it never downloads a browser), sends ``--text`` (default: the first example sentence of the
run's test split) with Enter, waits for every card and writes a PNG of the whole page.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (root in a container), no GPU, and no traffic of Chromium's own: without the
# background-networking switches it tries to reach outside hosts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(url: str, out: str | Path, text: str | None = None, width: int = 1200, timeout_s: float = 120) -> Path:
    """Open the page at ``url``, send ``text`` (None: click the first example), save a full-page PNG."""
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: install Debian's chromium (make sysdeps)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(url.rstrip("/") + "/")
            expect(page.locator("#send")).to_be_enabled(timeout=timeout_s * 1000)
            if text is None:
                page.locator("#examples button").first.click()
            else:
                box = page.get_by_label("Sentence")
                box.fill(text)
                box.press("Enter")
            expect(page.locator("#status")).to_contain_text("answered", timeout=timeout_s * 1000)
            page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: serve ``--run``, screenshot its page into ``--out``, stop the server."""
    from kdutils.serving.deploy import ServerOptions, free_ports, start_server, wait_healthy

    p = argparse.ArgumentParser(prog="python -m kdutils.serving.page_shot", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="run directory, e.g. outputs/smoke")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.add_argument("--models", default="all", help="served models, comma-separated, or 'all' (default)")
    p.add_argument("--text", default=None, help="sentence to send (default: the first example)")
    p.add_argument("--width", type=int, default=1200, help="viewport width in CSS pixels")
    args = p.parse_args(argv)
    port = free_ports(1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(args.run, port, Path(tmp) / "server.log",
                            ServerOptions(models=tuple(m.strip() for m in args.models.split(","))))
        try:
            wait_healthy(proc.url, proc, timeout=300)
            print(shoot(proc.url, args.out, args.text, args.width))
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
