"""Run the notebooks' checks in an environment without nbdev, exactly the cells `nbdev_test` would run.

  python .ci/run_plan.py PLAN [--workers N]

PLAN is what `python .ci/notebooks.py plan PLAN` wrote where nbdev is installed: for each notebook, its folder and the
sources of the code cells `nbdev_test` executes (nbdev itself chose them, skipping `#| full` and `#| eval: false`).
Here, where nbdev 2 cannot be installed (the newest fastcore has dropped what it imports), each notebook runs as
`nbdev_test` runs it: in a fresh execnb `CaptureShell` (execnb's current version, as nbdev uses it), from the notebook's
folder, with IN_TEST set, stopping at the first error. N worker processes (default: the cores, at most 8, as
`nbdev_test`) take the notebooks in order, each the next one nobody has taken. Prints a line per notebook and the
traceback of each failure; exits with 1 if any failed.
"""
import json, os, sys, time, tempfile, subprocess
from pathlib import Path

def run_notebook(nb:dict) -> tuple:
    "Run the planned cells of one notebook; (passed, seconds, traceback or '')"
    from execnb.shell import CaptureShell
    try: from fastcore.nbio import dict2nb  # execnb 0.2 moved its notebook reader into fastcore 2
    except ImportError: from execnb.nbio import dict2nb
    os.environ['IN_TEST'] = '1'
    t = time.monotonic()
    shell = CaptureShell(nb['folder'])
    cells = [dict(cell_type='code', source=src, metadata={}, outputs=[], execution_count=None) for src in nb['cells']]
    cwd = os.getcwd()
    try:
        os.chdir(nb['folder'])
        shell.run_all(dict2nb(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)), exc_stop=True)
        return True, time.monotonic() - t, ''
    except BaseException: return False, time.monotonic() - t, shell.prettytb(fname=nb['name'])
    finally: os.chdir(cwd)

def worker(plan:list, claims:Path):
    "Take the next notebook nobody has claimed, run it, report it on stdout as one JSON line; until none is left"
    for nb in plan:
        try: os.close(os.open(claims/nb['name'], os.O_CREAT | os.O_EXCL))
        except FileExistsError: continue
        ok, secs, tb = run_notebook(nb)
        print(json.dumps(dict(name=nb['name'], ok=ok, seconds=round(secs, 1), traceback=tb)), flush=True)

def main(args):
    if not args or args[0].startswith('-'): sys.exit(__doc__)
    plan = json.loads(Path(args[0]).read_text())
    if len(args) > 2 and args[1] == '--worker': return worker(plan, Path(args[2]))
    n = int(args[args.index('--workers') + 1]) if '--workers' in args else min(os.cpu_count() or 1, 8)
    t, failed, passed = time.monotonic(), [], 0
    with tempfile.TemporaryDirectory(prefix='run-plan-') as claims:
        procs = [subprocess.Popen([sys.executable, __file__, args[0], '--worker', claims], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        for p in procs:
            for line in p.stdout:
                r = json.loads(line)
                print(f"{r['name']}: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']:.0f} s", flush=True)
                if r['ok']: passed += 1
                else: failed.append(r); print(r['traceback'], flush=True)
            p.wait()
    crashed = [p.returncode for p in procs if p.returncode]
    print(f"{passed} of {len(plan)} notebooks passed in {time.monotonic() - t:.0f} s" + (f"; {len(crashed)} worker(s) crashed" if crashed else ''))
    sys.exit(0 if passed == len(plan) and not crashed else 1)

if __name__ == '__main__': main(sys.argv[1:])
