"""`pets-course train` against a plain fastai script on the same real photos: error rate, wall and CPU seconds.

    python benchmarks/real_photos.py [FULL_FOLDER] [--seeds 3] [--sets sample,full] [--runs plain,matched,defaults]

Three runs on each set of photos, for each seed, one after the other so that a change in the machine's load hits them alike:
- plain: `benchmarks/plain_fastai.py`, the chapter's recipe as about 30 lines of fastai (presize 224, size 160, bs 32,
  Lite0, `lr_find()`, then `fine_tune(4, base_lr=2e-3, freeze_epochs=2)`, fastai's default number of workers);
- matched: `pets-course train --arch lite0 --size 160 --freeze-epochs 2 --epochs 4 --lr auto` (the same architecture, size and
  epochs; the rest are the command's choices);
- defaults: `pets-course train --data ...` with nothing else.
The sets: 'sample', the 185 photos shipped with the package (shorter side 320 px), and 'full', the same photos at full
resolution (FULL_FOLDER, by default ../shared/data/oxford_pets_sample next to the repository).
The validation set is 37 photos, so one photo is 0.027 of error rate: compare means over seeds, not single runs. Both sides
validate on the same 37 photos (plain_fastai.py sorts the files as pets_course does; unsorted, the seeded split depends on
the file system's order, and a different 37 photos can move the error rate by 0.15).
CPU seconds include every child process (DataLoader workers). Where the time went: the lr finder and `fine_tune` as each
run reports them, and the decoding of the photos, measured apart (decode + presize of every photo once).
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MATCHED = ['--arch', 'lite0', '--size', '160', '--freeze-epochs', '2', '--epochs', '4', '--lr', 'auto']

def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def run(argv) -> tuple:
    "Run `argv`; return (stdout, wall seconds, CPU seconds of it and every child it waited for)"
    c0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if p.returncode: sys.exit(f'{" ".join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}')
    return p.stdout, wall, cpu

def plain(folder, seed) -> dict:
    out, wall, cpu = run([sys.executable, str(HERE/'plain_fastai.py'), str(folder), '--seed', str(seed)])
    r = json.loads(out.strip().splitlines()[-1])
    return dict(error=r['error'], wall=wall, cpu=cpu, lr_find=r['lr_find_s'], fine_tune=r['fine_tune_s'], lr=2e-3, valley=r['valley'])

def command(data, seed, flags) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _, wall, cpu = run([sys.executable, '-c', 'import sys; from pets_course.cli import main; sys.exit(main())',
                            'train', '--data', str(data), '--seed', str(seed), '--out', out, *flags])
        m = json.loads((Path(out)/'metrics.json').read_text())
    s = m['seconds']
    return dict(error=m['error_rate'], wall=wall, cpu=cpu, lr_find=s['lr_find'], fine_tune=s['fine_tune'], lr=m['lr'],
                valley=m['lr_find']['valley'], settings={k: m['settings'][k] for k in ('presize', 'size', 'bs', 'num_it', 'num_workers')})

def decoding(folder, presize) -> float:
    "Milliseconds of CPU per photo to decode it and presize it, as fastai's `PILImage.create` and `Resize` do (median of 3 passes)"
    code = ("import sys, time; from pathlib import Path; from fastai.vision.all import PILImage, Resize\n"
            f"fs = sorted(Path({str(folder)!r}).glob('*.jpg')); rs = Resize({presize}); ts = []\n"
            "for _ in range(3):\n    t = time.process_time()\n    for f in fs: rs(PILImage.create(f), split_idx=0)\n"
            "    ts.append((time.process_time() - t)/len(fs)*1000)\nprint(sorted(ts)[1])")
    return float(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('full', nargs='?', default=str(HERE.parent.parent/'shared'/'data'/'oxford_pets_sample'),
                    help='the photos at full resolution (default: ../shared/data/oxford_pets_sample)')
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--sets', default='sample,full')
    ap.add_argument('--runs', default='plain,matched,defaults')
    ap.add_argument('--json', help='also write every run to this file')
    ap.add_argument('--extra', default='', help='flags added to both command runs, such as "--bs 32" to try other defaults')
    ap.add_argument('--extra-defaults', default='', help='flags added to the defaults run only, such as "--lr 2e-3"')
    a = ap.parse_args()
    from pets_course.sample import sample_path
    sets = {'sample': sample_path()/'images', 'full': Path(a.full)}
    kinds = a.runs.split(',')
    print(f'# {os.cpu_count()} cores, PETS_COURSE_THREADS={os.environ.get("PETS_COURSE_THREADS", "(unset)")}, load average {os.getloadavg()[0]:.1f}'
          + (f', extra flags for the command: {a.extra}' if a.extra else '') + (f', for its defaults run: {a.extra_defaults}' if a.extra_defaults else ''))
    results = {}
    for name in a.sets.split(','):
        folder = sets[name]
        for seed in range(1, a.seeds + 1):
            for kind in kinds:
                l0 = os.getloadavg()[0]
                if kind == 'plain': r = plain(folder, seed)
                elif kind == 'matched': r = command(folder, seed, MATCHED + a.extra.split())
                else: r = command('sample' if name == 'sample' else folder, seed, a.extra.split() + a.extra_defaults.split())
                r['load'] = (round(l0, 1), round(os.getloadavg()[0], 1))
                results.setdefault((name, kind), []).append(r)
                print(f'{name:6s} {kind:8s} seed {seed}: error {r["error"]:.3f}, wall {r["wall"]:6.1f} s, CPU {r["cpu"]:6.1f} s, '
                      f'lr finder {r["lr_find"]:5.1f} s, fine_tune {r["fine_tune"]:5.1f} s, lr {r["lr"]:.1e}, load {r["load"][0]} -> {r["load"][1]}'
                      + (f', {r["settings"]}' if 'settings' in r else ''), flush=True)
        if a.json: Path(a.json).write_text(json.dumps({f'{k[0]} {k[1]}': v for k, v in results.items()}, indent=1))
    mean = lambda rs, k: statistics.fmean(r[k] for r in rs)
    print(f'\n| photos | run | error (mean of {a.seeds} seeds) | errors | wall s | CPU s | wall / plain | CPU / plain | lr finder s | fine_tune s |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for (name, kind), rs in results.items():
        base = results.get((name, 'plain'))
        ratio = lambda k: f'{mean(rs, k)/mean(base, k):.2f}' if base else 'n/a'
        errors = ', '.join(f'{r["error"]:.3f}' for r in rs)
        print(f'| {name} | {kind} | {mean(rs, "error"):.3f} | {errors} | {mean(rs, "wall"):.0f} | {mean(rs, "cpu"):.0f} '
              f'| {ratio("wall")} | {ratio("cpu")} | {mean(rs, "lr_find"):.0f} | {mean(rs, "fine_tune"):.0f} |')
    print('\ndecoding (CPU per photo: decode + presize, as fastai does it for each photo in each batch):')
    for name in a.sets.split(','):
        print(f'  {name}: ' + ', '.join(f'presize {p}: {decoding(sets[name], p):.1f} ms' for p in (224, 329)))
    print(f'# load average at the end {os.getloadavg()[0]:.1f}')

if __name__ == '__main__': main()
