"""How fast `pets-course` answers: `--help` and argument errors, and `pets-course train` with no arguments from a cold start.

    python benchmarks/cli_speed.py [--runs 3] [--latency-runs 5]

Each train run gets a fresh, empty PETS_COURSE_CACHE (so it draws the tiny set first, as on a new machine) and a fresh
--out folder. Prints the median wall time and CPU seconds (the command and every process it waited for) of each,
the error rates, and the load average around the measurements: the machine may be shared, and a busy machine
slows a run down several times over.
"""
import argparse, json, os, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

LATENCY = {'pets-course --help': ['--help'], 'pets-course train --help': ['train', '--help'],
           'pets-course train --bs 0': ['train', '--bs', '0'], 'pets-course train --lr abc': ['train', '--lr', 'abc'],
           'pets-course train --size 96 --presize 64': ['train', '--size', '96', '--presize', '64'],
           'pets-course predict (no such model)': ['predict', 'x.jpg', '--model', 'no_such_model.pkl']}

def command() -> list:
    "The installed `pets-course` script, or the module run by this Python"
    exe = shutil.which('pets-course')
    return [exe] if exe else [sys.executable, '-c', 'import sys; from pets_course.cli import main; sys.exit(main())']

def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def timed(argv, env=None) -> tuple:
    "Run `argv`; return (exit code, wall seconds, CPU seconds of it and its children, stdout, stderr)"
    c0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    return p.returncode, time.perf_counter() - t0, children_cpu() - c0, p.stdout, p.stderr

def load() -> float: return os.getloadavg()[0]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=3, help='cold-start runs of `pets-course train`')
    ap.add_argument('--latency-runs', type=int, default=5, help='runs of each help/error command')
    ap.add_argument('--skip-train', action='store_true')
    a = ap.parse_args()
    exe = command()
    print(f'# {" ".join(exe)}; {os.cpu_count()} cores; PETS_COURSE_THREADS={os.environ.get("PETS_COURSE_THREADS", "(unset)")}; load average {load():.1f}')
    print(f'\n{"command":45s} {"code":>4s} {"median wall":>12s} {"median CPU":>11s}')
    for name, argv in LATENCY.items():
        res = [timed(exe + argv) for _ in range(a.latency_runs)]
        print(f'{name:45s} {res[0][0]:4d} {statistics.median(r[1] for r in res):10.2f} s {statistics.median(r[2] for r in res):9.2f} s')
    if a.skip_train: return
    print(f'\npets-course train, no arguments, fresh cache each run (load average {load():.1f})')
    rows = []
    for i in range(a.runs):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, PETS_COURSE_CACHE=cache)
            l0 = load()
            code, wall, cpu, stdout, stderr = timed(exe + ['train', '--out', out], env=env)
            if code: sys.exit(f'run {i+1} failed ({code}): {stderr.strip().splitlines()[-1:]}')
            m = json.loads((Path(out)/'metrics.json').read_text())
        rows.append((wall, cpu, m['error_rate'], m['seconds'], [{k: v for k, v in r.items() if k != 'time'} for r in m['epochs']], m['lr_find']))
        print(f'run {i+1}: error {m["error_rate"]:.3f}, wall {wall:.1f} s, CPU {cpu:.1f} s, load {l0:.1f} -> {load():.1f}; '
              f'inside the command: ' + ', '.join(f'{k} {v:.1f} s' for k, v in m['seconds'].items()))
    med = lambda i: statistics.median(r[i] for r in rows)
    print(f'median: wall {med(0):.1f} s, CPU {med(1):.1f} s, error {med(2):.3f} (max {max(r[2] for r in rows):.3f})')
    same = all(r[4:] == rows[0][4:] for r in rows)
    print(f'repeatable: the {len(rows)} runs (same default seed) gave ' + ('the same lr finder suggestions and the same table' if same else 'DIFFERENT tables'))
    print(f'median inside the command: ' + ', '.join(f'{k} {statistics.median(r[3][k] for r in rows):.1f} s' for k in rows[0][3]))

if __name__ == '__main__': main()
