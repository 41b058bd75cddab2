"""How long the test suite takes: `nbdev_test --timing` from a cold cache, several times, with the median.

  python benchmarks/suite.py [--runs 3] [--n-workers 4] [--warm]

Each run gets a fresh, empty PETS_COURSE_CACHE (so it draws the tiny set, measures the training speed once and trains
the baseline, as CI on a new machine does), unless --warm, which reuses one cache for all runs after the first.
Prints the suite's wall time and every notebook's time (nbdev_test's own count: notebooks run side by side, so the
per-notebook times add up to more than the wall time), the load average before each run, and the medians.
Not a test: it asserts nothing.
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def run_once(n_workers, cache):
    env = {**os.environ, 'PETS_COURSE_CACHE': cache, 'MPLBACKEND': 'Agg'}
    env.pop('PETS_COURSE_DATA', None)
    cmd = ['nbdev_test', '--timing'] + (['--n_workers', str(n_workers)] if n_workers else [])
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode: sys.exit(f'nbdev_test failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}')
    per_nb = {m[1]: int(m[2]) for m in re.finditer(r'^(\S+\.ipynb): (\d+) secs$', p.stdout, re.M)}
    return load, wall, per_nb

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--n-workers', type=int, default=None, help="nbdev_test's --n_workers (default: nbdev_test's own)")
    ap.add_argument('--warm', action='store_true', help='reuse the cache after the first run')
    a = ap.parse_args()
    walls, per = [], {}
    with tempfile.TemporaryDirectory(prefix='suite-cache-') as shared:
        for i in range(a.runs):
            with tempfile.TemporaryDirectory(prefix='suite-cache-') as fresh:
                load, wall, per_nb = run_once(a.n_workers, shared if a.warm else fresh)
            walls.append(wall)
            for k, v in per_nb.items(): per.setdefault(k, []).append(v)
            print(f'run {i+1}: {wall:.0f} s wall (load average before: {load:.2f})', flush=True)
    print(f'\nnbdev_test --n_workers {a.n_workers or "default"}, {"warm" if a.warm else "cold"} cache, {a.runs} runs: '
          f'median wall {statistics.median(walls):.0f} s (runs: {", ".join(f"{w:.0f}" for w in walls)})')
    for k in sorted(per, key=lambda k: -statistics.median(per[k])):
        print(f'  {k:<28} median {statistics.median(per[k]):4.0f} s   runs: {per[k]}')

if __name__ == '__main__': main()
