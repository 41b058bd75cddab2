"""Fixtures of the browser tests: one JupyterLab server and one headless Chromium for the whole run.

Knobs (environment variables):
  E2E_CHROMIUM          the Chromium binary (default: `chromium` or `chromium-browser` on the PATH)
  E2E_CELL_TIMEOUT      seconds one cell may run (default 1200); E2E_NOTEBOOK_TIMEOUT, one notebook (3600)
  E2E_WIDGET_TIMEOUT    seconds an explorer may take to redraw after a slider move (120)
  E2E_PARALLEL          notebooks run at a time (2); with more than one, each kernel gets one torch thread
  E2E_ARTIFACTS         where screenshots, the JupyterLab log and timings go (tests/e2e/artifacts)
  E2E_KEEP=1            keep the temp folder the notebooks ran in
  E2E_NBS               run the notebooks of another folder (to check the suite itself; default nbs/)
  E2E_EXPLORERS_SETUP   a Python file run in the explorers notebook after its imports (see test_explorers.py)
PETS_COURSE_CACHE and the rest of the environment reach the kernels; MPLBACKEND, IN_TEST and JUPYTER_* (but
JUPYTER_PATH) do not.
"""
from __future__ import annotations
import json, os, shutil, signal, tempfile, time
import pytest
from lab import ARTIFACTS, NBS, PARALLEL, REPO, CHROMIUM_ARGS, Lab, chromium_path, is_local

_t0 = time.monotonic()
TIMINGS: dict = {}

def pytest_configure(config):
    # CI stops a job with SIGTERM: turn it into KeyboardInterrupt so the fixtures below still stop JupyterLab and Chromium
    def _term(signum, frame): raise KeyboardInterrupt(f'signal {signum}')
    signal.signal(signal.SIGTERM, _term)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for p in ARTIFACTS.glob('*.png'): p.unlink()

@pytest.fixture(scope='session')
def say(pytestconfig):
    "Print a progress line now, through pytest's output capture (a long notebook would otherwise look stuck)"
    capman = pytestconfig.pluginmanager.getplugin('capturemanager')
    def _say(msg):
        with capman.global_and_fixture_disabled(): print(f'\n    [e2e] {msg}', end='', flush=True)
    return _say

@pytest.fixture(scope='session')
def lab_root():
    "A temp folder laid out like the repository (settings.ini, nbs/ without its notebooks): JupyterLab's root"
    d = tempfile.mkdtemp(prefix='pets-e2e-')
    root = os.path.join(d, 'root')
    shutil.copytree(NBS, os.path.join(root, 'nbs'), ignore=shutil.ignore_patterns(
        '*.ipynb', '.*', '_*', 'pets_out', 'models', '__pycache__'))
    shutil.copy2(REPO/'settings.ini', root)
    yield d
    if not os.environ.get('E2E_KEEP'): shutil.rmtree(d, ignore_errors=True)
    else: TIMINGS['kept (E2E_KEEP)'] = root

@pytest.fixture(scope='session')
def lab(lab_root):
    "JupyterLab on 127.0.0.1, a free port and a token, tiny mode through the environment; stopped whatever happens"
    from pathlib import Path
    env = {'PETS_COURSE_DATA': 'tiny'}
    # notebooks run PARALLEL at a time (test_notebooks.py); then, as under nbdev_test, one torch thread per kernel
    if PARALLEL > 1 and not os.environ.get('PETS_COURSE_THREADS'): env['PETS_COURSE_THREADS'] = '1'
    server = Lab(Path(lab_root)/'root', Path(lab_root)/'home', env=env, log=ARTIFACTS/'jupyterlab.log')
    server.log_path.unlink(missing_ok=True)
    t = time.monotonic()
    try:
        server.start()
        TIMINGS['jupyterlab start'] = time.monotonic() - t
        yield server
    finally: server.stop()

@pytest.fixture(scope='session')
def browser(lab_root):
    "Headless system Chromium with a fresh profile; records every page request that is not to this machine"
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    ctx = None
    try:
        ctx = pw.chromium.launch_persistent_context(
            os.path.join(lab_root, 'chromium-profile'), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_ARGS, viewport={'width': 1280, 'height': 900}, device_scale_factor=1,
            service_workers='block', accept_downloads=False)
        ctx.nonlocal_requests = []
        ctx.on('request', lambda r: None if is_local(r.url) else ctx.nonlocal_requests.append(r.url))
        yield ctx
        TIMINGS['page requests not to localhost'] = str(len(ctx.nonlocal_requests))
        assert not ctx.nonlocal_requests, f'the browser tried to leave localhost: {ctx.nonlocal_requests[:10]}'
    finally:
        try:
            if ctx is not None: ctx.close()
        finally: pw.stop()

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    setattr(item, f'rep_{rep.when}', rep)

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TIMINGS: return
    TIMINGS['suite wall time'] = time.monotonic() - _t0
    tr = terminalreporter
    tr.section('browser tests: wall times')
    for k, v in TIMINGS.items(): tr.write_line(f'{k:<40} {v:7.1f} s' if isinstance(v, float) else f'{k:<40} {v}')
    try: (ARTIFACTS/'timings.json').write_text(json.dumps(TIMINGS, indent=1))
    except OSError: pass
