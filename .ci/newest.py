"""CI against the newest fastai: the package beside the newest fastai and fastcore, as a learner on Colab would have them.

  python .ci/newest.py [--venv DIR]      (from the development environment, which has nbdev)

1. A new virtual environment (DIR, default a temporary folder) gets the newest fastai and fastcore from the index, and
   what the notebooks need beyond the package for their checks (execnb to run them, scikit-image for 13_backbone's
   photo, accelerate for 06_cli's two processes). No dev extra: nbdev 2 cannot install beside fastcore 2.
2. The guard: `pip install --dry-run --report` of this package there must install neither fastai nor fastcore.
3. `pip install .` (the runtime requirements only), then `pip check`.
4. Every module of the package imports, and `pets-course --help` answers.
5. `pets-course train` on the tiny set, the default, in an empty folder.
6. Every notebook's checks: nbdev, here, plans which cells `nbdev_test` would run (.ci/notebooks.py); the new
   environment runs them (.ci/run_plan.py, execnb's current CaptureShell, no nbdev).
Each step prints what it did; the first that fails stops the script with exit status 1.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ['execnb', 'scikit-image', 'accelerate>=1.0']   # the notebook runner and what the notebooks' checks import

def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    print('+', ' '.join(map(str, cmd)), flush=True)
    p = subprocess.run([str(c) for c in cmd], **kw)
    if p.returncode: sys.exit(f'FAIL (exit {p.returncode}): {" ".join(map(str, cmd))}')
    return p

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--venv', default=None, help='where to make the environment (default: a temporary folder, removed after)')
    a = ap.parse_args()
    tmp = None if a.venv else tempfile.TemporaryDirectory(prefix='pets-course-newest-')
    venv = Path(a.venv or tmp.name)/'venv' if not a.venv else Path(a.venv)
    t0 = time.monotonic()
    if not (venv/'bin'/'python').exists(): sh(sys.executable, '-m', 'venv', venv)
    py, pip = venv/'bin'/'python', [venv/'bin'/'python', '-m', 'pip', '--disable-pip-version-check']
    sh(*pip, 'install', '--quiet', '--upgrade', 'fastai', 'fastcore', *EXTRA)
    ver = lambda m: sh(py, '-c', f'import {m}; print({m}.__version__)', capture_output=True, text=True).stdout.strip()
    before = dict(fastai=ver('fastai'), fastcore=ver('fastcore'))
    print(f'the newest on the index: fastai {before["fastai"]}, fastcore {before["fastcore"]}')

    with tempfile.TemporaryDirectory() as d:
        report = Path(d)/'report.json'
        sh(*pip, 'install', '--quiet', '--dry-run', '--report', report, ROOT)
        would = {i['metadata']['name'].lower(): i['metadata']['version'] for i in json.loads(report.read_text())['install']}
    touched = {k: v for k, v in would.items() if k in ('fastai', 'fastcore')}
    if touched: sys.exit(f'FAIL: installing the package beside fastai {before["fastai"]} would install {touched}: the runtime requirements must accept the newest')
    print(f'guard: the package would install {sorted(would)}, neither fastai nor fastcore')

    sh(*pip, 'install', '--quiet', ROOT)
    sh(*pip, 'check')
    after = dict(fastai=ver('fastai'), fastcore=ver('fastcore'))
    if after != before: sys.exit(f'FAIL: installing the package changed {before} to {after}')
    mods = sorted(p.stem for p in (ROOT/'pets_course').glob('*.py') if not p.stem.startswith('_'))
    sh(py, '-c', f'import importlib; [importlib.import_module("pets_course." + m) for m in {mods}]; print("imported", len({mods}), "modules")')
    cli = venv/'bin'/'pets-course'
    sh(cli, '--help', stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        sh(cli, 'train', cwd=d, env={**os.environ, 'PETS_COURSE_DATA': ''})
        metrics = json.loads((Path(d)/'pets_out'/'metrics.json').read_text())
        print(f"pets-course train: error rate {metrics['error_rate']:.4f} in {time.monotonic() - t:.0f} s, with fastai {after['fastai']}")

    with tempfile.TemporaryDirectory() as d:
        plan = Path(d)/'plan.json'
        sh(sys.executable, ROOT/'.ci'/'notebooks.py', 'plan', plan)
        env = {k: v for k, v in os.environ.items() if k not in ('PETS_COURSE_DATA', 'VIRTUAL_ENV')}
        env['PATH'] = f"{venv/'bin'}{os.pathsep}{env.get('PATH', '')}"  # the notebooks' `pets-course` and `torchrun` are the new environment's
        sh(py, ROOT/'.ci'/'run_plan.py', plan, env=env, cwd=ROOT)
    print(f"newest fastai ({after['fastai']}, fastcore {after['fastcore']}): every step passed in {time.monotonic() - t0:.0f} s")

if __name__ == '__main__': main()
