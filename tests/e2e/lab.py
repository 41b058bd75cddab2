"""A private JupyterLab server and a headless Chromium driven by Playwright: what the end-to-end tests share.

Everything stays on this machine: the server listens on 127.0.0.1 only, with a random token, and its config,
settings, workspaces, kernel specs and runtime files live in a temp folder; Chromium's non-local traffic is sent to a
dead proxy and every page request is recorded, and the server's Python processes (kernels included) run a network
guard that refuses and records every connection to another machine (kernel_site/sitecustomize.py), so a test can
check that nothing left localhost.
"""
from __future__ import annotations
import ctypes, json, os, re, secrets, shutil, signal, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
from urllib.parse import quote
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: what the browser suites share
sys.path.insert(0, str(Path(__file__).resolve().parents[2]/'.ci'))  # .ci/notebooks.py: the notebooks and their directives, read by nbdev
from chromium import CHROMIUM_ARGS, LOCAL_HOSTS, is_local, chromium_path as _chromium_path
from notebooks import notebooks as _nbdev_notebooks, tst_flags, directives

REPO = Path(__file__).resolve().parents[2]
NBS = REPO/'nbs'
ARTIFACTS = Path(os.environ.get('E2E_ARTIFACTS') or Path(__file__).resolve().parent/'artifacts')

def env_seconds(name, default):
    "A number (seconds, a count) from the environment variable `name`, else `default`"
    v = os.environ.get(name)
    if not v: return default
    try: return float(v)
    except ValueError: raise ValueError(f"{name}={v!r}: expected a number") from None

# How long a notebook may take. The binding limits are on the CPU time of its kernel, which measures the notebook's own
# work whatever else the machine runs: on two idle cores, with one torch thread per kernel, CPU seconds are about wall
# seconds, and the longest sample-mode cell needs about 150 (lr_find on the unfrozen lite0 at 160 px). The wall-clock
# limits only catch a cell that hangs without computing; they are loose so that a busy shared machine, where a kernel
# may get a fifth of a core, does not fail a correct notebook.
CELL_CPU = env_seconds('E2E_CELL_CPU', 600)                   # CPU seconds, one cell
NOTEBOOK_CPU = env_seconds('E2E_NOTEBOOK_CPU', 1200)          # CPU seconds, one notebook
CELL_TIMEOUT = env_seconds('E2E_CELL_TIMEOUT', 1800)          # wall seconds, one cell
NOTEBOOK_TIMEOUT = env_seconds('E2E_NOTEBOOK_TIMEOUT', 3600)  # wall seconds, one notebook
WIDGET_TIMEOUT = env_seconds('E2E_WIDGET_TIMEOUT', 120)       # one slider move: kernel round trip and redraw
PARALLEL = max(1, int(env_seconds('E2E_PARALLEL', 2)))        # notebooks run at a time, as nbdev_test does

# -- the notebooks ------------------------------------------------------------------------------------------------

# The data modes the notebooks run in, each with its own kernel (`kernel_name`): tiny (drawn cartoons, what nbdev_test
# uses), sample (the real photos shipped with the package) and folder (a folder of one's own photos, as a learner
# points PETS_COURSE_DATA at it: `E2E_FOLDER`, else a copy of the shipped photos laid out as a user's folder, see
# `folder_data`). Oxford needs the network (and, to be of use, a GPU), so it is not run here.
KNOWN_MODES = ('tiny', 'sample', 'folder')

def modes_from_env(value:str|None=None) -> tuple[str, ...]:
    "The modes to run: `E2E_MODES` (space or comma separated), by default all of `KNOWN_MODES`"
    value = os.environ.get('E2E_MODES', '') if value is None else value
    modes = tuple(dict.fromkeys(value.replace(',', ' ').split())) or KNOWN_MODES
    bad = [m for m in modes if m not in KNOWN_MODES]
    if bad: raise ValueError(f"E2E_MODES={value!r}: unknown mode {bad[0]!r}; expected some of {', '.join(KNOWN_MODES)}")
    return modes

MODES = modes_from_env()

def kernel_name(mode:str) -> str: return f'pets-{mode}'

def folder_data(into:Path) -> Path:
    """The folder mode's photos: `E2E_FOLDER` if set (such as a full-resolution copy of the Oxford photos), else a copy
    of the photos shipped with the package in `into`, flat (no `images/` inside), as a learner's own folder might be"""
    if os.environ.get('E2E_FOLDER'):
        p = Path(os.path.expanduser(os.environ['E2E_FOLDER']))
        if not p.is_dir(): raise ValueError(f"E2E_FOLDER={os.environ['E2E_FOLDER']!r}: expected a folder of pet photos")
        return p.resolve()
    from pets_course.sample import sample_path   # no fastai import
    shutil.copytree(sample_path()/'images', into, ignore=shutil.ignore_patterns('.*'))
    return Path(into)

def folder_digest(p:Path) -> dict[str, str]:
    "sha256 of every file under `p`, by relative path: the folder mode checks that nothing in the user's folder changed"
    import hashlib
    return {str(f.relative_to(p)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(Path(p).rglob('*')) if f.is_file()}

def course_notebooks(nbs:Path|None=None) -> list[Path]:
    """The notebooks `nbdev_test` would run (nbdev's own list: `.ci/notebooks.py`), or those of `E2E_NBS`, for checking
    the suite on other notebooks"""
    return _nbdev_notebooks(nbs or os.environ.get('E2E_NBS') or None)

def prepare_copy(src:Path, dst:Path, kernel:str|None=None, skip_flags:set[str]=frozenset()) -> dict:
    """Copy notebook `src` to `dst` with outputs cleared, to run with kernel `kernel` (a kernel spec name; None keeps
    the notebook's). Every code cell stays a code cell, the `#| full` ones included, as in a learner's copy, except
    the ones nbdev never runs (`#| eval: false`) and those marked with one of `skip_flags`: these become raw cells.
    Returns {'off': cells turned off, 'flagged': cells marked with a test flag of settings.ini that stay on}."""
    nb = json.loads(src.read_text(encoding='utf-8'))
    flags, n_off, n_flagged = tst_flags(), 0, 0
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        d = directives(''.join(c['source']))
        if set(skip_flags) & set(d) or ' '.join(d.get('eval', [])).lower() == 'false':
            c['cell_type'] = 'raw'; c.pop('outputs', None); c.pop('execution_count', None); n_off += 1
        else:
            c['outputs'], c['execution_count'] = [], None
            n_flagged += bool(flags & set(d))
    if kernel:
        nb.setdefault('metadata', {})['kernelspec'] = {'name': kernel, 'display_name': kernel, 'language': 'python'}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + '.tmp')
    tmp.write_text(json.dumps(nb, indent=1), encoding='utf-8'); os.replace(tmp, dst)
    return {'off': n_off, 'flagged': n_flagged}

def make_notebook(cells:list[str], kernel:str='python3') -> dict:
    "A notebook with one code cell per string in `cells`, run by kernel spec `kernel`"
    return {'cells': [{'cell_type': 'code', 'metadata': {}, 'source': s, 'execution_count': None, 'outputs': []} for s in cells],
            'metadata': {'kernelspec': {'display_name': kernel, 'language': 'python', 'name': kernel}},
            'nbformat': 4, 'nbformat_minor': 5}

# -- the server ---------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _die_with_parent():
    "In the child: get SIGTERM when the test process dies, even if it is killed (Linux only)"
    try: ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception: pass

def _descendants(pid:int) -> list[int]:
    "The pids of all processes below `pid`, from /proc"
    kids = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: ppid = int((d/'stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []): out.append(k); todo.append(k)
    return out

def process_cpu(pid:int|None) -> float|None:
    "CPU seconds process `pid` has used: user and system time, with those of its children that have ended (Linux)"
    if pid is None: return None
    try:
        f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return sum(int(x) for x in f[11:15]) / os.sysconf('SC_CLK_TCK')   # utime stime cutime cstime
    except (OSError, ValueError, IndexError): return None

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

KERNEL_SITE = Path(__file__).resolve().parent/'kernel_site'   # the network guard's sitecustomize.py

class Lab:
    """A JupyterLab server on 127.0.0.1 serving the folder `root`, with its own config, settings and runtime dirs
    under `home`. `env` is added to the environment of the server and so of every kernel; `kernels` maps kernel spec
    names to the environment variables of their kernels alone (one kernel spec per data mode). With `netlog` (a
    folder), every Python process the server starts runs the network guard of kernel_site/sitecustomize.py, which
    refuses connections to other machines and records each attempt there (`net_attempts`). `pythonpath` (folders)
    comes first on the PYTHONPATH of every process the server starts, after the guard's folder."""
    def __init__(self, root:Path, home:Path, env:dict|None=None, log:Path|None=None, kernels:dict|None=None,
                 netlog:Path|None=None, pythonpath:list|None=None):
        self.root, self.home, self.extra_env = Path(root), Path(home), dict(env or {})
        self.pythonpath = [str(p) for p in pythonpath or []]
        self.kernels, self.netlog = dict(kernels or {}), Path(netlog) if netlog else None
        self.log_path = Path(log) if log else self.home/'jupyterlab.log'
        self.proc, self.port, self.token = None, None, secrets.token_hex(24)

    @property
    def url(self): return f'http://127.0.0.1:{self.port}'

    def _write_config(self):
        d = {k: self.home/k for k in ('config', 'data', 'runtime', 'settings', 'workspaces')}
        for p in d.values(): p.mkdir(parents=True, exist_ok=True)
        # no request leaves the machine: no news feed, no update check, no PyPI extension manager
        cfg = {'ServerApp': {'ip': '127.0.0.1', 'open_browser': False, 'port_retries': 0, 'terminals_enabled': False,
                             'allow_root': hasattr(os, 'geteuid') and os.geteuid() == 0},  # CI runs as root
               'LabApp': {'news_url': None, 'check_for_updates_class': 'jupyterlab.NeverCheckForUpdate',
                          'extension_manager': 'readonly'}}
        (d['config']/'jupyter_server_config.json').write_text(json.dumps(cfg, indent=1))
        # user settings: every cell attached to the page (so the tests see all outputs), no news toast, no autosave
        settings = {'@jupyterlab/notebook-extension/tracker.jupyterlab-settings': {'windowingMode': 'none'},
                    '@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
                    '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': {'autosave': False}}
        for name, value in settings.items():
            p = d['settings']/name; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(value))
        # the kernel specs: JUPYTER_DATA_DIR/kernels comes first on Jupyter's search path
        for name, kenv in self.kernels.items():
            k = d['data']/'kernels'/name; k.mkdir(parents=True, exist_ok=True)
            (k/'kernel.json').write_text(json.dumps({
                'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                'display_name': f'Python 3 ({name})', 'language': 'python', 'env': dict(kenv), 'metadata': {'debugger': True}}, indent=1))
        return d

    def start(self, timeout:float=240):
        d = self._write_config()
        # the user's Jupyter config, token and runtime files stay out (JUPYTER_PATH, where extensions and kernels are
        # found, is kept)
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith(('JUPYTER', 'JPY_')) and k != 'JUPYTER_PATH') and k not in ('MPLBACKEND', 'IN_TEST')}
        # MPLBACKEND=Agg (set by CI) would keep plots out of the notebook; IN_TEST is nbdev_test's, not a learner's
        env.update(JUPYTER_CONFIG_DIR=str(d['config']), JUPYTER_DATA_DIR=str(d['data']), JUPYTER_RUNTIME_DIR=str(d['runtime']),
                   JUPYTERLAB_SETTINGS_DIR=str(d['settings']), JUPYTERLAB_WORKSPACES_DIR=str(d['workspaces']),
                   PYTHONUNBUFFERED='1', **self.extra_env)
        first = list(self.pythonpath)
        if self.netlog:
            self.netlog.mkdir(parents=True, exist_ok=True)
            env['E2E_NETLOG'] = str(self.netlog)
            first.insert(0, str(KERNEL_SITE))
        env['PYTHONPATH'] = os.pathsep.join(first + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        self.log = open(self.log_path, 'ab')
        for attempt in range(3):
            self.port = free_port()
            cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', f'--ServerApp.port={self.port}',
                   f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={self.root}']
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.api('GET', 'status'); return self
                except (urllib.error.URLError, ConnectionError, OSError): time.sleep(0.5)
            if self.proc.poll() is None: break   # running but not answering: a real problem, not a port race
        self.stop()
        raise RuntimeError(f'JupyterLab did not start within {timeout:.0f} s; the end of its log:\n{self.log_tail()}')

    def log_tail(self, n=4000) -> str:
        try: return self.log_path.read_text(errors='replace')[-n:]
        except OSError: return ''

    def log_size(self) -> int:
        try: return self.log_path.stat().st_size
        except OSError: return 0

    def log_since(self, offset:int) -> str:
        "What the server and its kernels wrote to the log after byte `offset`"
        with open(self.log_path, 'rb') as f:
            f.seek(offset); return f.read().decode(errors='replace')

    def api(self, method:str, path:str, body=None, timeout:float=30):
        "Call the server's REST API (`path` under /api/) with the token; returns the decoded JSON or None"
        req = urllib.request.Request(f'{self.url}/api/{path}', method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Authorization': f'token {self.token}', 'Content-Type': 'application/json'})
        with _DIRECT.open(req, timeout=timeout) as r:   # never through an HTTP(S)_PROXY from the environment
            data = r.read()
        return json.loads(data) if data else None

    def shutdown_kernels(self, path:str|None=None):
        "Shut down the sessions (and kernels) of notebook `path`, or all of them"
        try:
            for s in self.api('GET', 'sessions'):
                if path is None or s.get('path') == path: self.api('DELETE', f"sessions/{s['id']}")
        except Exception: pass

    def net_attempts(self) -> list[dict]:
        """Every network access the guard refused so far (see kernel_site/sitecustomize.py), oldest first: dicts with
        `event`, `target`, `session` (the notebook's absolute path, or None outside a kernel), `pid`, `argv`, `stack`"""
        out = []
        if self.netlog and self.netlog.is_dir():
            for f in sorted(self.netlog.glob('*.jsonl')):
                for line in f.read_text(encoding='utf-8', errors='replace').splitlines():
                    try: out.append(json.loads(line))
                    except ValueError: out.append({'event': 'unreadable record', 'target': line[:200], 'session': None})
        return out

    def kernel_id(self, path:str) -> str|None:
        "The id of the kernel of notebook `path` (relative to the root)"
        try:
            for sess in self.api('GET', 'sessions'):
                if sess.get('path') == path: return (sess.get('kernel') or {}).get('id')
        except Exception: return None

    def kernel_pid(self, path:str) -> int|None:
        "The process id of the kernel of notebook `path` (its command line names the kernel's connection file)"
        kid = self.kernel_id(path)
        if not kid or self.proc is None: return None
        for pid in _descendants(self.proc.pid):
            try:
                if f'kernel-{kid}.json' in Path(f'/proc/{pid}/cmdline').read_bytes().decode(errors='replace'): return pid
            except OSError: continue

    def kernel_cpu(self, path:str) -> float|None:
        """CPU seconds (user + system, its finished children included) the kernel of notebook `path` has used so
        far: a measure of the notebook's work that, unlike wall time, hardly depends on what else the machine runs"""
        return process_cpu(self.kernel_pid(path))

    def stop(self):
        "Stop the server and every process it started (kernels included), whatever state it is in"
        if self.proc is None: return
        kids = []
        if self.proc.poll() is None:
            self.shutdown_kernels()
            kids = _descendants(self.proc.pid)
            self.proc.terminate()   # SIGTERM: the server stops at once, its kernels with it
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait(10)
        for pid in kids:   # kernels live in their own sessions; they exit with their parent, this makes sure
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        self.proc = None
        if getattr(self, 'log', None): self.log.close()

# -- the browser --------------------------------------------------------------------------------------------------

def chromium_path() -> str:
    "The system Chromium: `E2E_CHROMIUM`, else `chromium` (Debian's package) or `chromium-browser` on the PATH"
    return _chromium_path('E2E_CHROMIUM')

# -- JupyterLab in the page ----------------------------------------------------------------------------------------

ACTIVE = '.jp-NotebookPanel:not(.lm-mod-hidden)'
ERROR_MIME = 'application/vnd.jupyter.error'
STDERR_MIME = 'application/vnd.jupyter.stderr'
WIDGET = '.jp-OutputArea-output > .jupyter-widgets'   # a rendered widget view (its output has no data-mime-type)

# the state of the open notebook, read in the page: kernel status, each code cell's prompt and first line
_STATE_JS = """() => {
  const panel = document.querySelector('%s');
  if (!panel) return null;
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')].map(c => ({
    prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
    src: ((c.querySelector('.jp-InputArea-editor .cm-content') || {}).innerText || '').trim()}));
  return {status: ind ? ind.getAttribute('data-status') : null, cells,
          n_cells: panel.querySelectorAll('.jp-Notebook .jp-Cell').length};
}""" % ACTIVE

# what a learner would see as a failure, per cell: error outputs, tracebacks on stderr, widgets that never
# rendered, plots shown as text
_PROBLEMS_JS = """() => {
  const panel = document.querySelector('%s');
  const out = [], cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')];
  cells.forEach((cell, i) => {
    const src = ((cell.querySelector('.jp-InputArea-editor .cm-content') || {}).innerText || '').trim().split('\\n')[0];
    const prompt = ((cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '').trim();
    // a long traceback keeps its head (which cell, which line) and its tail (the exception)
    const cut = t => t.length > 4000 ? t.slice(0, 800) + '\\n[...]\\n' + t.slice(-3000) : t;
    const add = (kind, text) => out.push({cell: i, n_cells: cells.length, prompt, src, kind, text: cut((text || '').trim())});
    // JupyterLab 4 renders error outputs and stderr alike (data-mime-type application/vnd.jupyter.stderr);
    // an error output is IPython's traceback: a line of dashes, then `SomeError   Traceback (most recent call last)`
    cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="%s"], .jp-OutputArea-output[data-mime-type="%s"]').forEach(e => {
      const t = e.innerText || '';
      if (e.getAttribute('data-mime-type') === '%s' || /^-{20,}\\s*\\n\\S+\\s+Traceback \\(most recent call last\\)/.test(t)) add('error', t);
      else if (/Traceback \\(most recent call last\\)/.test(t)) add('traceback on stderr', t); });
    cell.querySelectorAll('.jp-OutputArea-output').forEach(e => {
      const t = e.innerText || '';
      if (/Loading widget\\.\\.\\.|Error displaying widget|model not found/.test(t)) add('widget not rendered', t);
      if (e.getAttribute('data-mime-type') === 'text/plain' && /^\\w+\\((children|layout)=/.test(t.trim())) add('widget shown as text', t);
      if (/^<Figure size \\d+x\\d+ with \\d+ Axes>$/m.test(t) && !e.querySelector('img')) add('plot shown as text', t);
    });
  });
  return out;
}""" % (ACTIVE, ERROR_MIME, STDERR_MIME, ERROR_MIME)

_STATS_JS = """() => {
  const panel = document.querySelector('%s');
  const q = s => panel.querySelectorAll(s).length;
  return {cells: q('.jp-Notebook .jp-Cell'), code: q('.jp-Notebook .jp-CodeCell'), raw: q('.jp-Notebook .jp-RawCell'),
          images: q('.jp-OutputArea-output img'), widgets: q('%s'),
          stderr: q('.jp-OutputArea-output[data-mime-type="%s"]')};
}""" % (ACTIVE, WIDGET, STDERR_MIME)

class NotebookTimeout(AssertionError): pass

def parse_kernel_frame(payload) -> dict|None:
    """The message in one websocket frame from a kernel: JupyterLab 4 speaks the binary
    `v1.kernel.websocket.jupyter.org` protocol (a count, offsets, then channel, header, parent header, metadata,
    content); older clients send JSON text. Returns {channel, header, parent_header, content} or None."""
    try:
        if isinstance(payload, str):
            m = json.loads(payload); return {k: m.get(k) for k in ('channel', 'header', 'parent_header', 'content')}
        b = bytes(payload)
        n = int.from_bytes(b[:8], 'little')
        offs = [int.from_bytes(b[8*(i+1):8*(i+2)], 'little') for i in range(n)]
        parts = [b[offs[i]:offs[i+1]] for i in range(n-1)]
        return {'channel': parts[0].decode(), 'header': json.loads(parts[1]), 'parent_header': json.loads(parts[2]),
                'content': json.loads(parts[4])}
    except Exception: return None

class LabPage:
    "A Playwright page showing one notebook of `lab`; records every error message its kernels send"
    def __init__(self, lab:Lab, page, path:str):
        self.lab, self.page, self.path = lab, page, path
        self.kernel_errors, self.kernel_sockets = [], []
        page.on('websocket', self._on_websocket)

    def _on_websocket(self, ws):
        if '/api/kernels/' not in ws.url: return
        self.kernel_sockets.append(ws.url)
        def frame(payload):
            m = parse_kernel_frame(payload)
            if m and m['header'].get('msg_type') == 'error':
                c = m['content']
                self.kernel_errors.append({'ename': c.get('ename'), 'evalue': c.get('evalue'),
                                           'during': (m['parent_header'] or {}).get('msg_type'),
                                           'traceback': '\n'.join(c.get('traceback') or [])})
        ws.on('framereceived', frame)

    def open(self, timeout:float=300):
        "Open the notebook in its own fresh workspace; wait until all its cells are shown and its kernel is idle"
        n_cells = len(json.loads((self.lab.root/self.path).read_text(encoding='utf-8'))['cells'])
        ws = re.sub(r'\W+', '-', self.path)
        self.page.goto(f'{self.lab.url}/lab/workspaces/e2e-{ws}/tree/{quote(self.path)}?reset&token={self.lab.token}',
                       timeout=timeout*1000)
        deadline, ok = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            s = self.state()
            ready = (s and s['status'] == 'idle' and s['n_cells'] == n_cells and self.kernel_sockets and
                     self.kernel_state() == 'idle')
            ok = ok + 1 if ready else 0
            if ok >= 2:
                self.kernel_pid = self.lab.kernel_pid(self.path)
                return self
            time.sleep(0.5)
        raise NotebookTimeout(f'{self.path}: not open with an idle kernel after {timeout:.0f} s (last state {s and s["status"]}, '
                              f'{s and s["n_cells"]}/{n_cells} cells, kernel {self.kernel_state()})')

    def kernel_state(self) -> str|None:
        "The execution state of this notebook's kernel, from the server"
        try:
            for sess in self.lab.api('GET', 'sessions'):
                if sess.get('path') == self.path: return (sess.get('kernel') or {}).get('execution_state')
        except Exception: return None

    def state(self): return self.page.evaluate(_STATE_JS)

    def menu(self, top:str, item:str):
        "Click menu `top` in the menu bar, then its entry `item`, as a learner would"
        self.page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(f'^{re.escape(top)}$')).click()
        self.page.locator('.lm-Menu-itemLabel', has_text=re.compile(f'^{re.escape(item)}$')).click()

    def cpu(self) -> float|None:
        "CPU seconds this notebook's kernel has used so far (None if its process is unknown)"
        return process_cpu(getattr(self, 'kernel_pid', None))

    def start_run(self, cell_timeout:float, total_timeout:float, progress=None, every:float=60,
                  cell_cpu:float|None=None, total_cpu:float|None=None):
        """Run > Run All Cells; `poll_run` then follows the run. It fails (and interrupts the kernel) if one cell runs
        longer than `cell_timeout` wall seconds or uses more than `cell_cpu` CPU seconds of the kernel, or the whole
        notebook longer than `total_timeout` or more than `total_cpu`. `progress(msg)`, if given, hears which cell is
        running every `every` seconds."""
        self.page.locator(f'{ACTIVE} .jp-Notebook').click(position={'x': 5, 'y': 5})  # the notebook has the focus
        self.menu('Run', 'Run All Cells')
        t0, cpu0 = time.monotonic(), self.cpu()
        self._run = dict(t0=t0, cell_timeout=cell_timeout, total_timeout=total_timeout, progress=progress, every=every,
                         cell_cpu=cell_cpu, total_cpu=total_cpu, cpu0=cpu0, cell_cpu0=cpu0,
                         running=None, since=t0, slowest=(0., None, ''), stable=0, seen_start=False, told=t0)

    def poll_run(self) -> dict|None:
        """None while the notebook runs; when no cell is queued or running and the kernel is idle (twice in a row):
        {'seconds': wall time, 'slowest': (seconds, cell index, first line), 'prompts': [...]}"""
        r, now, s, cpu = self._run, time.monotonic(), self.state(), self.cpu()
        prompts = [c['prompt'] for c in s['cells']]
        busy = [i for i, p in enumerate(prompts) if '*' in p]
        if busy or s['status'] != 'idle': r['seen_start'] = True
        cur = busy[0] if busy else None
        first_line = lambda i: (s['cells'][i]['src'].splitlines() or [''])[0]
        if cur != r['running']:
            if r['running'] is not None and now - r['since'] > r['slowest'][0]:
                r['slowest'] = (now - r['since'], r['running'], first_line(r['running']) if r['running'] < len(s['cells']) else '')
            r['running'], r['since'], r['cell_cpu0'] = cur, now, cpu
        running, since = r['running'], r['since']
        used = lambda c0: cpu - c0 if cpu is not None and c0 is not None else 0.
        cell_cpu, total_cpu = used(r['cell_cpu0']), used(r['cpu0'])
        if r['progress'] and now - r['told'] >= r['every']:
            r['told'] = now
            r['progress'](f'{self.path}: {now - r["t0"]:.0f} s ({total_cpu:.0f} CPU s), ' + (
                f'code cell {running}/{len(prompts)} running for {now - since:.0f} s ({cell_cpu:.0f} CPU s): '
                f'`{first_line(running)[:60]}`' if running is not None else f'kernel {s["status"]}'))
        def stop(why):
            self.interrupt()
            cell = f'; code cell {running} (counting code cells from 0): {s["cells"][running]["src"][:200]!r}' if running is not None else ''
            raise NotebookTimeout(f'{self.path}: {why}{cell}')
        if running is not None and now - since > r['cell_timeout']:
            stop(f'one cell still running after {r["cell_timeout"]:.0f} s (E2E_CELL_TIMEOUT), having used {cell_cpu:.0f} CPU s')
        if running is not None and r['cell_cpu'] and cell_cpu > r['cell_cpu']:
            stop(f'one cell used more than {r["cell_cpu"]:.0f} CPU s (E2E_CELL_CPU) in {now - since:.0f} s')
        if now - r['t0'] > r['total_timeout']:
            stop(f'still running after {r["total_timeout"]:.0f} s (E2E_NOTEBOOK_TIMEOUT), having used {total_cpu:.0f} CPU s')
        if r['total_cpu'] and total_cpu > r['total_cpu']:
            stop(f'used more than {r["total_cpu"]:.0f} CPU s (E2E_NOTEBOOK_CPU) in {now - r["t0"]:.0f} s')
        done = not busy and s['status'] == 'idle' and (r['seen_start'] or any(re.search(r'\d', p) for p in prompts))
        r['stable'] = r['stable'] + 1 if done else 0
        if r['stable'] >= 2: return {'seconds': now - r['t0'], 'slowest': r['slowest'], 'prompts': prompts}

    def run_all(self, cell_timeout:float, total_timeout:float, poll:float=1.0, progress=None, every:float=60,
                cell_cpu:float|None=None, total_cpu:float|None=None) -> dict:
        "Run > Run All Cells and wait for the end of the run (see `start_run` and `poll_run`)"
        self.start_run(cell_timeout, total_timeout, progress, every, cell_cpu, total_cpu)
        while True:
            time.sleep(poll)
            res = self.poll_run()
            if res: return res

    def interrupt(self):
        try: self.menu('Kernel', 'Interrupt Kernel')
        except Exception: pass

    def problems(self) -> list[dict]: return self.page.evaluate(_PROBLEMS_JS)
    def stats(self) -> dict: return self.page.evaluate(_STATS_JS)

    def cell(self, i:int):
        "Locator of code cell number `i` (0-based, counting code cells only)"
        return self.page.locator(f'{ACTIVE} .jp-Notebook .jp-CodeCell').nth(i)

def format_kernel_errors(errors:list[dict]) -> str:
    "The error messages a kernel sent, one paragraph each: name, value, what it was doing, the traceback's last lines"
    ansi = re.compile(r'\x1b\[[0-9;]*m')
    return '\n'.join(f"- {e['ename']}: {e['evalue']} (while handling a {e['during']})\n    " +
                     '\n    '.join(ansi.sub('', e['traceback']).strip().splitlines()[-6:]) for e in errors)

def format_problems(problems:list[dict], where:str='') -> str:
    """One paragraph per problem: `where` (such as `[sample] 02_get_preds.ipynb`), the cell (its number among all
    cells, counting from 1 as a learner would, and its prompt `[n]`), its first line, what went wrong, and the end
    of the output"""
    return '\n'.join(f"- {where}{', ' if where else ''}cell {p['cell'] + 1}{'/' + str(p['n_cells']) if p.get('n_cells') else ''} "
                     f"{p.get('prompt') or ''} ({p['kind']}) `{p['src'][:80]}`:\n    " + _head_tail(p['text']).replace('\n', '\n    ')
                     for p in problems)

def _head_tail(text:str, head:int=400, tail:int=1600) -> str:
    "The start of `text` (a traceback's cell and line) and its end (the exception), when it is long"
    return text if len(text) <= head + tail + 50 else f'{text[:head]}\n[...]\n{text[-tail:]}'
