"""The spread of every check on a training outcome over seeds and thread counts: what the bounds of `test_outcome` come from.

  python benchmarks/sweep.py [--mode tiny] [--seeds 42 0 1 2 3 4 5 6 7 8] [--threads 1 2] [--out DIR]
  python benchmarks/sweep.py --mode sample --seeds 42 0 1 2 3 --threads 1
  python benchmarks/sweep.py --report DIR [DIR ...]     # the table again, from the logs of earlier sweeps (a later DIR's
                                                        # run of a notebook replaces an earlier one's)
  python benchmarks/sweep.py ... --caches DIR           # keep each run's cache in DIR/<run>, to reuse its baseline next time

Every check of a training outcome in the lessons (an error rate, a loss, the order of two runs, a suggested rate) goes
through `pets_course.testing.test_outcome`. With PETS_COURSE_SWEEP_LOG set, that function writes the value and its
bounds to the file the variable names and lets the notebook go on, so one run measures every check.

Each run (a mode, a seed, a thread count) is one process with a fresh, empty PETS_COURSE_CACHE (it draws the tiny set
and trains the baseline of that seed itself, as a new machine does; with --caches, a cache of its own that a later sweep
reuses: the baseline's cache key holds the seed but not the thread count, so runs do not share one) and PETS_COURSE_SEED, PETS_COURSE_THREADS and
PETS_COURSE_DATA set. It runs the notebooks that call `test_outcome` one after the other with nbdev's own `test_nb`
(`00_data` first: it trains the baseline the others reuse), skipping the cells `nbdev_test` skips. Runs on one thread go
two at a time (one per core), runs on two threads one at a time: threads that share cores wait for each other.

The table: for each check, the runs that reached it, the lowest and highest value, the bounds, and the margin, how far
the closest value stayed inside its bound as a fraction of the bound (a bound of 0: as an absolute distance). A value
outside its bounds is marked OUT, with its seed and thread count. Not a test: it asserts nothing; it exits with 1 when
a value fell outside its bounds or a notebook failed for another reason (the log of each run is in DIR).
"""
import argparse, contextlib, json, os, subprocess, sys, tempfile, time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NBS = REPO/'nbs'

def outcome_notebooks() -> list:
    "The lesson and appendix notebooks that call `test_outcome`, in the order nbdev_test runs them"
    return sorted(f for f in NBS.glob('*.ipynb') if 'test_outcome(' in f.read_text(encoding='utf-8'))

def worker(out:Path, notebooks:list):
    "Run `notebooks` one after the other in this process, each `test_outcome` logging to out/<notebook>.jsonl"
    from nbdev.test import test_nb
    from nbdev.config import get_config
    flags = get_config().tst_flags.split()
    for nb in notebooks:
        nb = Path(nb)
        os.environ['PETS_COURSE_SWEEP_LOG'] = str(out/f'{nb.stem}.jsonl')
        t = time.monotonic()
        ok, _ = test_nb(nb, skip_flags=flags)
        (out/f'{nb.stem}.result.json').write_text(json.dumps(dict(ok=ok, seconds=round(time.monotonic() - t, 1))))
        print(f'{nb.name}: {"ok" if ok else "FAILED"} in {time.monotonic() - t:.0f} s', flush=True)

def run(mode:str, seed:int, threads:int, out:Path, notebooks:list, caches:Path|None=None) -> dict:
    "One run of the sweep in its own process and its own cache (empty, or kept in `caches`); returns where its logs are"
    d = out/f'{mode}-seed{seed}-threads{threads}'
    d.mkdir(parents=True, exist_ok=True)
    if caches: (caches/d.name).mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(caches/d.name)) if caches else tempfile.TemporaryDirectory(prefix='sweep-cache-')) as cache:
        env = {**os.environ, 'PETS_COURSE_CACHE': cache, 'PETS_COURSE_DATA': mode, 'PETS_COURSE_SEED': str(seed),
               'PETS_COURSE_THREADS': str(threads), 'MPLBACKEND': 'Agg'}
        t = time.monotonic()
        with open(d/'log.txt', 'w') as log:
            p = subprocess.run([sys.executable, __file__, '--worker', str(d), *map(str, notebooks)], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    secs = time.monotonic() - t
    print(f'{d.name}: {"done" if p.returncode == 0 else f"exit {p.returncode}"} in {secs:.0f} s', flush=True)
    return dict(dir=d, seconds=secs)

def read(dirs:list) -> tuple:
    "The logged values of every run under `dirs`, and the notebooks that failed (not counting values out of bounds)"
    latest = {}  # (run, notebook) -> the folder of its latest run: a later sweep's run of a notebook replaces an earlier one's
    for top in dirs:
        for d in sorted(Path(top).glob('*-seed*-threads*')):
            for f in d.glob('*.result.json'): latest[(d.name, f.name.split('.')[0])] = d
    rows, failed = [], []
    for (name, nb), d in sorted(latest.items()):
        mode, seed, threads = name.rsplit('-seed', 1)[0], *name.rsplit('-seed', 1)[1].split('-threads')
        log = d/f'{nb}.jsonl'
        for line in (log.read_text().splitlines() if log.exists() else []):
            rows.append(dict(json.loads(line), mode=mode, seed=int(seed), threads=int(threads), nb=nb))
        if not json.loads((d/f'{nb}.result.json').read_text())['ok']: failed.append((name, nb))
    return rows, failed

def margin(value, bound, side) -> float:
    "How far `value` is inside `bound` (+) or outside (-), as a fraction of the bound (absolute for a bound of 0)"
    gap = (bound - value) if side == 'hi' else (value - bound)
    return gap/abs(bound) if bound else gap

def table(rows:list) -> list:
    "One line per check (mode, notebook, what): runs, range, bounds, margin, and the runs outside the bounds"
    groups = defaultdict(list)
    for r in rows: groups[(r['mode'], r['nb'], r['what'])].append(r)
    lines = []
    for (mode, nb, what), rs in groups.items():
        vals = [r['value'] for r in rs]
        lo, hi = rs[0]['lo'], rs[0]['hi']
        m = min(margin(v, b, side) for v, b, side in ((min(vals), lo, 'lo'), (max(vals), hi, 'hi')) if b is not None)
        out = [f"seed {r['seed']}/{r['threads']}t: {r['value']:.4g}" for r in rs if not r['ok']]
        lines.append(dict(mode=mode, nb=nb, what=what, n=len(rs), min=min(vals), max=max(vals), lo=lo, hi=hi, margin=m, out=out))
    return lines

def fmt(x): return '' if x is None else f'{x:.4g}'

def report(dirs:list) -> int:
    rows, failed = read(dirs)
    lines = table(rows)
    print(f"\n{len({(r['mode'], r['seed'], r['threads']) for r in rows})} runs, {len(lines)} checks\n")
    print('| mode | notebook | check | runs | lowest | highest | bounds | margin |')
    print('|---|---|---|---|---|---|---|---|')
    for l in lines:
        bounds = ' and '.join(f"{op} {fmt(l[k])}" for op, k in (('>', 'lo'), ('<', 'hi')) if l[k] is not None)
        m = f"{l['margin']:+.0%}" + (f" **OUT**: {'; '.join(l['out'])}" if l['out'] else '')
        print(f"| {l['mode']} | {l['nb']} | {l['what']} | {l['n']} | {fmt(l['min'])} | {fmt(l['max'])} | {bounds} | {m} |")
    for run_name, nb in failed: print(f'FAILED for another reason: {nb} in {run_name} (see its log.txt)')
    return int(bool(failed) or any(l['out'] for l in lines))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--mode', '--kind', dest='mode', default='tiny', help="the mode: 'tiny' (default), 'sample', or a folder (--kind: its old name)")
    ap.add_argument('--seeds', type=int, nargs='+', default=[42, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--notebooks', nargs='+', help='notebook names (default: every notebook that calls test_outcome)')
    ap.add_argument('--out', default=None, help='where the logs go (default: a new folder sweep-<time> under benchmarks/)')
    ap.add_argument('--report', nargs='+', metavar='DIR', help='only print the table of earlier sweeps')
    ap.add_argument('--caches', default=None, help="keep each run's cache in this folder (default: a fresh one, removed after)")
    ap.add_argument('--worker', nargs='+', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(Path(a.worker[0]), a.worker[1:])
    if a.report: sys.exit(report(a.report))
    notebooks = [NBS/n if n.endswith('.ipynb') else next(NBS.glob(f'{n}*.ipynb')) for n in a.notebooks] if a.notebooks else outcome_notebooks()
    out = Path(a.out or REPO/'benchmarks'/f'sweep-{time.strftime("%Y%m%d-%H%M%S")}')
    print(f"sweep of {', '.join(n.stem for n in notebooks)} in {a.mode} mode: seeds {a.seeds}, threads {a.threads}; logs in {out}")
    cores = os.cpu_count() or 1
    for t in sorted(a.threads):
        with ThreadPoolExecutor(max(1, cores // t)) as ex: list(ex.map(lambda s: run(a.mode, s, t, out, notebooks, a.caches and Path(a.caches)), a.seeds))
    sys.exit(report([out]))

if __name__ == '__main__': main()
