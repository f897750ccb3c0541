"""Opens a local HTML file in headless Chromium (the system package) through the DevTools protocol.

Used by the report tests: what a user's browser would show, not what a parser thinks. Protocol:
https://chromedevtools.github.io/devtools-protocol/ (Page.navigate, Network.loadingFailed,
Network.responseReceived, Runtime.evaluate), spoken with websocket-client (in requirements.lock).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# Every <img>: whether it decoded (naturalWidth) and the size it is laid out at (getBoundingClientRect).
IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => {
  const r = i.getBoundingClientRect();
  return {alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
          width: r.width, height: r.height, src: i.currentSrc.slice(0, 30)};
}))"""


def chromium() -> str | None:
    """The path of the system Chromium, or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _devtools_port(process: subprocess.Popen, user_dir: Path, timeout: float) -> int:
    deadline = time.time() + timeout
    port_file = user_dir / "DevToolsActivePort"
    while time.time() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text().split()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def open_page(path: Path, timeout: float = 20.0, width: int = 1280) -> dict[str, Any]:
    """Loads file `path` in headless Chromium and returns {"loaded": bool, "failed": [(url, reason)],
    "images": [per-<img> dict from IMAGES_JS], "title": str}. Raises RuntimeError without Chromium."""
    import websocket  # websocket-client

    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium on PATH")
    # Chromium's helper processes (renderer, utility, crash handler) may still write into the profile
    # folder after the browser process exits: a plain clean-up then fails now and then with "Directory
    # not empty" (seen in CI, 2026-12-06). So the browser runs in its own process group, the whole group
    # is stopped before the folder goes, and a file a straggler left behind does not fail the test.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as user_dir:
        process = subprocess.Popen(
            [
                exe,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={user_dir}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = _devtools_port(process, Path(user_dir), timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as answer:
                target = next(t for t in json.load(answer) if t["type"] == "page")
            ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
            try:
                return _load(ws, path.resolve().as_uri(), timeout)
            finally:
                ws.close()
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to the browser's whole process group, SIGKILL to whatever is left after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is gone already
            break
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.killpg(process.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                break
            process.poll()  # reap the browser itself, so the group can empty
            time.sleep(0.05)
        else:
            continue
        break
    process.wait(timeout=timeout)


def _load(ws, url: str, timeout: float) -> dict[str, Any]:
    ids = iter(range(1, 10_000))
    failed: list[tuple[str, str]] = []
    urls: dict[str, str] = {}
    loaded = False

    def send(method: str, **params: Any) -> int:
        message_id = next(ids)
        ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        return message_id

    def handle(message: dict[str, Any]) -> None:
        nonlocal loaded
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"][:80]
        elif method == "Network.loadingFailed":
            failed.append((urls.get(params["requestId"], "?"), params.get("errorText", "")))
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            failed.append((params["response"]["url"][:80], f"HTTP {params['response']['status']}"))
        elif method == "Page.loadEventFired":
            loaded = True

    def call(method: str, **params: Any) -> dict[str, Any]:
        message_id = send(method, **params)
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == message_id:
                return message.get("result", {})
            handle(message)

    call("Network.enable")
    call("Page.enable")
    call("Page.navigate", url=url)
    deadline = time.time() + timeout
    while not loaded and time.time() < deadline:
        handle(json.loads(ws.recv()))
    images = json.loads(call("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True)["result"]["value"])
    title = call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
    return {"loaded": loaded, "failed": failed, "images": images, "title": title}
