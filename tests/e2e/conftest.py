"""Fixtures of the browser tests: one JupyterLab server and one headless Chromium for the whole run.

Knobs (environment variables):
  E2E_MODES             the data modes the notebooks run in, each as a learner's Run All (default `tiny sample folder`)
  E2E_FOLDER            the folder mode's photos (default: a copy of the shipped sample, flat, in the temp folder); the
                        run fails if any file in it changed
  E2E_CACHE             the model cache the kernels share (PETS_COURSE_CACHE): by default a fresh temp folder per run,
                        so every run is a cold run that does not depend on the user's cache; set a folder to reuse one
                        (E2E_CACHE=~/.cache/pets_course: quicker, but the baselines are then not trained by the run)
  E2E_CHROMIUM          the Chromium binary (default: `chromium` or `chromium-browser` on the PATH)
  E2E_CELL_CPU          CPU seconds of its kernel one cell may use (default 600); E2E_NOTEBOOK_CPU, one notebook (1200)
  E2E_CELL_TIMEOUT      wall seconds one cell may run (default 1800); E2E_NOTEBOOK_TIMEOUT, one notebook (3600): these
                        only catch a hang; on a busy shared machine a kernel may get a fraction of a core
  E2E_WIDGET_TIMEOUT    seconds an explorer may take to redraw after a slider move (120)
  E2E_PARALLEL          notebooks run at a time (2); with more than one, each kernel gets one torch thread
  E2E_ARTIFACTS         where screenshots, the JupyterLab log and timings go (tests/e2e/artifacts)
  E2E_KEEP=1            keep the temp folder the notebooks ran in (and its cache)
  E2E_NBS               run the notebooks of another folder (to check the suite itself; default nbs/)
  E2E_EXPLORERS_SETUP   a Python file run in the explorers notebook after its imports (see test_explorers.py)

Each mode has its own kernel spec (`pets-tiny`, `pets-sample`, `pets-folder`), which sets PETS_COURSE_DATA for its kernels, and its own
copy of the repository's layout (`<mode>/settings.ini`, `<mode>/nbs/`) under JupyterLab's root. The rest of the
environment reaches the kernels, except MPLBACKEND, IN_TEST and JUPYTER_* (but JUPYTER_PATH), with PETS_COURSE_CACHE
set as above, TORCH_HOME, FASTAI_HOME and HF_HOME pointing to empty folders, the network guard on (see
`no_download` below and kernel_site/sitecustomize.py), and this repository first on PYTHONPATH, so the kernels run
this checkout's `pets_course` even when `pip install -e` was last run in another checkout.
"""
from __future__ import annotations
import json, os, shutil, signal, tempfile, time
from pathlib import Path
import pytest
from lab import (ARTIFACTS, KNOWN_MODES, MODES, NBS, PARALLEL, REPO, CHROMIUM_ARGS, Lab, chromium_path, folder_data,
                 folder_digest, is_local, kernel_name)

_t0 = time.monotonic()
TIMINGS: dict = {}
NB_RESULTS: list = []   # one row per notebook test: mode, notebook, result, wall and CPU seconds, ...

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
    """A temp folder holding JupyterLab's root: one folder per mode laid out like the repository (settings.ini, nbs/
    without its notebooks), so that the same notebook runs in two modes side by side without sharing what it writes"""
    d = tempfile.mkdtemp(prefix='pets-e2e-')
    for mode in KNOWN_MODES:
        root = os.path.join(d, 'root', mode)
        shutil.copytree(NBS, os.path.join(root, 'nbs'), ignore=shutil.ignore_patterns(
            '*.ipynb', '.*', '_*', 'pets_out', 'models', '__pycache__'))
        shutil.copy2(REPO/'settings.ini', root)
    yield d
    if not os.environ.get('E2E_KEEP'): shutil.rmtree(d, ignore_errors=True)
    else: TIMINGS['kept (E2E_KEEP)'] = d

def notebook_env(lab_root:str) -> dict:
    """What the suite sets for every kernel: the model cache (`E2E_CACHE`, else a fresh folder), empty TORCH_HOME,
    FASTAI_HOME and HF_HOME (so that any pretrained weights or data set a notebook wanted would have to be downloaded,
    which the network guard refuses), and one torch thread per kernel when notebooks run side by side"""
    cache = os.path.expanduser(os.environ.get('E2E_CACHE') or os.path.join(lab_root, 'cache'))
    env = {'PETS_COURSE_CACHE': cache}
    for k in ('TORCH_HOME', 'FASTAI_HOME', 'HF_HOME'):
        env[k] = os.path.join(lab_root, 'empty-homes', k.lower())
        os.makedirs(env[k], exist_ok=True)
    # notebooks run PARALLEL at a time (test_notebooks.py); then, as under nbdev_test, one torch thread per kernel:
    # PETS_COURSE_THREADS for `course_mode`, and OMP_NUM_THREADS for the cells that run before it or without it (the
    # appendix notebooks), which would otherwise take one thread per core and fight over the cores
    if PARALLEL > 1:
        if not os.environ.get('PETS_COURSE_THREADS'): env['PETS_COURSE_THREADS'] = '1'
        if not os.environ.get('OMP_NUM_THREADS'): env['OMP_NUM_THREADS'] = '1'
    return env

@pytest.fixture(scope='session')
def lab(lab_root):
    """JupyterLab on 127.0.0.1, a free port and a token, a kernel spec per mode, the network guard on; stopped whatever
    happens. At the end, any network access the guard refused that no test has reported fails the run."""
    env = notebook_env(lab_root)
    TIMINGS['modes'] = ' '.join(MODES) + ' (E2E_MODES)'
    TIMINGS['model cache'] = env['PETS_COURSE_CACHE'] + ('' if os.environ.get('E2E_CACHE') else ' (fresh: a cold run)')
    folder = folder_data(Path(lab_root)/'my_pets') if 'folder' in MODES else None
    before = folder_digest(folder) if folder else None
    if folder: TIMINGS['folder mode'] = f'{folder} ({len(before)} files)'
    data = {m: str(folder) if m == 'folder' else m for m in KNOWN_MODES if m != 'folder' or folder}  # the explorers use tiny
    server = Lab(Path(lab_root)/'root', Path(lab_root)/'home', env=env, log=ARTIFACTS/'jupyterlab.log',
                 kernels={kernel_name(m): {'PETS_COURSE_DATA': d} for m, d in data.items()}, netlog=Path(lab_root)/'netlog',
                 pythonpath=[REPO])   # the kernels import this checkout's pets_course, whichever checkout pip installed
    server.log_path.unlink(missing_ok=True)
    server.reported = set()   # (pid, event, target) of the refused accesses some test has already failed on
    t = time.monotonic()
    try:
        server.start()
        TIMINGS['jupyterlab start'] = time.monotonic() - t
        yield server
        attempts = server.net_attempts()
        TIMINGS['network accesses refused'] = f'{len(attempts)}, of which {sum(map(is_probe, attempts))} reachability probes'
        left = [a for a in attempts if (a.get('pid'), a.get('event'), a.get('target')) not in server.reported and not is_probe(a)]
        assert not left, f'processes of the JupyterLab server tried to reach the network:\n{format_attempts(left)}'
        if folder:
            after = folder_digest(folder)
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            assert not changed, f"the notebooks changed the user's folder {folder}: {', '.join(changed[:10])}"
    finally: server.stop()

# The course's one reachability probe: `pets_course.modes.can_reach(host)` opens (and closes) a connection to ask whether
# the book's data set or weights could be downloaded, before it picks the book's mode or a model for a folder. The
# guard refuses it like any other connection, so the notebooks take their offline path, but it downloads nothing, so
# a notebook that only probes passes; any other connection or name lookup fails the notebook's test.
PROBES = {'can_reach'}

def is_probe(attempt:dict) -> bool:
    "Whether the function that opened the refused connection (the innermost frame outside socket.py) is one of `PROBES`"
    frames = [f for f in attempt.get('stack') or [] if '/socket.py:' not in f]
    return bool(frames) and frames[-1].rsplit(' ', 1)[-1] in PROBES

def no_download(lab:Lab, path:str) -> tuple[list[dict], int]:
    """The network accesses refused to notebook `path` (relative to the lab's root) that were not reachability probes,
    and the number of probes: what its kernel, or any Python process the kernel started, tried. Jupyter gives each
    kernel its notebook's path in JPY_SESSION_NAME, which the processes it starts inherit and the guard records; an
    empty list means nothing even tried to download."""
    full = str((lab.root/path).resolve())
    mine = [a for a in lab.net_attempts() if a.get('session') and (a['session'] == full or a['session'].endswith('/' + path))]
    lab.reported.update((a.get('pid'), a.get('event'), a.get('target')) for a in mine)
    return [a for a in mine if not is_probe(a)], sum(map(is_probe, mine))

def format_attempts(attempts:list[dict]) -> str:
    """One paragraph per refused access: what, where to, which process and notebook, and the innermost frames that are
    not Python's standard library (the notebook's cell, the library that wanted to download)"""
    import sysconfig
    stdlib = sysconfig.get_paths()['stdlib'] + os.sep
    def frames(a):
        st = a.get('stack') or []
        mine = [f for f in st if not (f.startswith((stdlib, '<frozen')) and 'site-packages' not in f)]
        return (mine or st)[-6:]
    return '\n'.join(f"- {a.get('event')} to {a.get('target')} (pid {a.get('pid')}, {a.get('session') or ' '.join(a.get('argv') or [])})"
                     + ''.join(f'\n      {f}' for f in frames(a)) for a in attempts[:10])

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
    row = getattr(item, 'e2e_row', None)   # set by test_notebook_runs_clean
    if row is not None and (rep.when == 'call' or rep.failed): row['result'] = 'passed' if rep.passed else rep.outcome

def _fmt(v, spec='7.1f'): return format(v, spec) if isinstance(v, (int, float)) else f'{v or "-":>7}'

def _row(r:dict) -> str:
    "One line of the notebooks' table: mode, notebook, result, wall and CPU seconds, code cells, `#| full` cells kept, ..."
    col = lambda k, w: f"{'-' if r.get(k) is None else r[k]:>{w}}"
    return (f"{r['mode']:<7} {r['notebook']:<22} {r.get('result', '?'):<7} {_fmt(r.get('wall'))} {_fmt(r.get('cpu'))}  "
            f"{col('code', 5)} {col('full', 5)} {col('images', 7)} {col('widgets', 8)} {col('probes', 7)}  {r.get('slowest', '')}")

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TIMINGS and not NB_RESULTS: return
    TIMINGS['suite wall time'] = time.monotonic() - _t0
    tr = terminalreporter
    if NB_RESULTS:
        tr.section('browser tests: notebooks (wall and kernel CPU seconds)')
        tr.write_line(f"{'mode':<7} {'notebook':<22} {'result':<7} {'wall s':>7} {'CPU s':>7}  cells  full  images  widgets  "
                      f"probes  slowest cell")
        for r in NB_RESULTS: tr.write_line(_row(r))
        for m in dict.fromkeys(r['mode'] for r in NB_RESULTS):
            rs = [r for r in NB_RESULTS if r['mode'] == m]
            tot = lambda k: sum(r.get(k) or 0 for r in rs)
            span = max(r['end'] for r in rs if 'end' in r) - min(r['start'] for r in rs if 'start' in r) if any('start' in r for r in rs) else 0
            tr.write_line(f"{m:<7} {'all ' + str(len(rs)) + ' notebooks':<22} {sum(r.get('result') == 'passed' for r in rs):>3} ok  "
                          f"{tot('wall'):7.1f} {tot('cpu'):7.1f}  (first start to last end: {span:.0f} s)")
    tr.section('browser tests: wall times')
    for k, v in TIMINGS.items(): tr.write_line(f'{k:<40} {v:7.1f} s' if isinstance(v, float) else f'{k:<40} {v}')
    try: (ARTIFACTS/'timings.json').write_text(json.dumps({'notebooks': NB_RESULTS, 'other': TIMINGS}, indent=1, default=str))
    except OSError: pass
