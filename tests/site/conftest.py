"""Fixtures of the website's browser test: the built site served from 127.0.0.1 under the published base path
(settings.ini's `doc_baseurl`, so a link that only works from the site's root fails here as it would on GitHub Pages),
and one headless system Chromium that may not reach anything but this machine.

Knobs (environment variables):
  SITE_DIR        the built site (default: _site/ of the repository; build it with `python .ci/site.py`)
  SITE_CHROMIUM   the Chromium binary (default: E2E_CHROMIUM, else `chromium` or `chromium-browser` on the PATH)
  SITE_SHOTS      where the screenshots go (default tests/site/artifacts/)
"""
from __future__ import annotations
import functools, http.server, threading
from urllib.parse import urlsplit, unquote
import pytest
from sitelib import CHROMIUM_ARGS, SITE, SUMMARY, base_path, chromium_path, is_local

class _Handler(http.server.SimpleHTTPRequestHandler):
    "Serves SITE under `prefix` only (404 elsewhere), quietly"
    prefix = '/'
    def translate_path(self, path):
        p = unquote(urlsplit(path).path)
        if not p.startswith(self.prefix): return str(SITE/'__outside_the_base_path__')
        return super().translate_path('/' + p[len(self.prefix):])
    def log_message(self, *a): pass

@pytest.fixture(scope='session')
def site():
    if not (SITE/'index.html').exists():
        pytest.fail(f'No site in {SITE}: build it first with `python .ci/site.py`')
    return SITE

@pytest.fixture(scope='session')
def server(site):
    "The site on 127.0.0.1 (a free port) under the published base path; yields the site's root URL"
    prefix = base_path()
    handler = functools.partial(type('H', (_Handler,), {'prefix': prefix}), directory=str(site))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}{prefix}'
    finally: srv.shutdown(); srv.server_close()

@pytest.fixture(scope='session')
def browser():
    "Headless system Chromium; every request that is not to this machine is recorded and aborted"
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        ctx = b.new_context(viewport={'width': 1280, 'height': 900}, device_scale_factor=1, service_workers='block')
        ctx.remote_requests = []
        def route(r):
            if is_local(r.request.url): r.continue_()
            else: ctx.remote_requests.append(r.request.url); r.abort()
        ctx.route('**/*', route)
        yield ctx
        ctx.close(); b.close()
    finally: pw.stop()

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not SUMMARY: return
    terminalreporter.section('website: what was checked')
    for k, v in SUMMARY.items(): terminalreporter.write_line(f'{k:<44} {v}')
