"""`pets-course train` on real photos beside the limit of its backbone and beside a plain fastai script, over several splits.

    python benchmarks/real_photos.py [FOLDER] [--splits 42 0 1 2 3] [--runs probe,command,images,plain] [--json FILE]

FOLDER is a folder of Oxford-named photos (default: ../shared/data/oxford_pets_sample, the 185 photos of the shipped sample
at full resolution); `sample` means the shipped photos themselves. For each split seed s, every run validates on the same
photos, the random 20% that `RandomSplitter(seed=s)` picks from the sorted files (the command's split: PETS_COURSE_SEED=s):
- probe: the limit of the frozen backbone: a logistic regression (scikit-learn) on Lite0's pooled ImageNet features of
  the training photos and their mirror images, at the command's size, centre crop; no fine-tuning at all;
- command: `pets-course train --data FOLDER` with no other option (on a CPU: the head on cached features);
- images: `pets-course train --data FOLDER --head images`, the lessons' fine_tune on augmented photos every epoch;
- plain: benchmarks/plain_fastai.py, the chapter's recipe in plain fastai (Lite0 at 160 px, lr_find, fine_tune(4, freeze_epochs=2)).
37 validation photos make each photo 2.7 points of error rate, so one split decides nothing: the table gives the mean and
the range over the splits, the mean error against the probe's, and the wall time against plain fastai's. Runs go one
after the other, so that a change in the machine's load hits them alike; the load average is printed with each.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent

def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def run(argv, env=None) -> tuple:
    "Run `argv`; (stdout, wall seconds, CPU seconds of it and every child it waited for)"
    c0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if p.returncode: sys.exit(f'{" ".join(map(str, argv))} failed ({p.returncode}):\n{p.stderr[-2000:]}')
    return p.stdout, wall, cpu

def command(data, split, flags=()) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _, wall, cpu = run([sys.executable, '-c', 'import sys; from pets_course.cli import main; sys.exit(main())',
                            'train', '--data', str(data), '--out', out, *flags], env={'PETS_COURSE_SEED': str(split)})
        m = json.loads((Path(out)/'metrics.json').read_text())
    return dict(error=m['error_rate'], wall=wall, cpu=cpu, seconds=m['seconds'], head=m['settings']['head'], size=m['settings']['size'])

def plain(folder, split) -> dict:
    out, wall, cpu = run([sys.executable, str(HERE/'plain_fastai.py'), str(folder), '--seed', str(split), '--split-seed', str(split)])
    r = json.loads(out.strip().splitlines()[-1])
    return dict(error=r['error'], wall=wall, cpu=cpu)

class Probe:
    "The linear probe: Lite0's pooled features of every photo (and its mirror image), once, then a logistic regression per split"
    def __init__(self, folder, size):
        import torch
        from fastai.vision.all import get_image_files
        from pets_course.data import pets_dataloaders, pets_learner, pet_label, BREEDS
        from pets_course.training import pooled_features
        t = time.perf_counter()
        dls = pets_dataloaders(folder, mode=folder, presize=size, size=size, bs=32)
        learn = pets_learner(dls, arch='lite0')
        self.files = get_image_files(folder).sorted()
        dl = dls.test_dl(self.files, with_labels=True)
        (self.x, self.y), (self.xf, _) = pooled_features(learn, dl), pooled_features(learn, dl, flip=True)
        self.secs = time.perf_counter() - t
    def error(self, split) -> dict:
        import numpy as np, torch
        from fastai.data.transforms import RandomSplitter
        from sklearn.linear_model import LogisticRegression
        tr, va = map(torch.tensor, RandomSplitter(seed=split)(self.files))
        t = time.perf_counter()
        m = LogisticRegression(max_iter=3000).fit(torch.cat([self.x[tr], self.xf[tr]]).numpy(), torch.cat([self.y[tr], self.y[tr]]).numpy())
        err = float((m.predict(self.x[va].numpy()) != self.y[va].numpy()).mean())
        return dict(error=err, wall=self.secs + time.perf_counter() - t, cpu=float('nan'))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folder', nargs='?', default=str(HERE.parent.parent/'shared'/'data'/'oxford_pets_sample'))
    ap.add_argument('--splits', type=int, nargs='+', default=[42, 0, 1, 2, 3])
    ap.add_argument('--runs', default='probe,command,images,plain')
    ap.add_argument('--json', help='also write every run to this file')
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    from pets_course.sample import sample_path
    from pets_course.settings import FEATURES_SETTINGS
    folder = sample_path()/'images' if a.folder == 'sample' else Path(a.folder)
    data = 'sample' if a.folder == 'sample' else folder
    kinds = a.runs.split(',')
    print(f'# {folder}: {os.cpu_count()} cores, PETS_COURSE_THREADS={os.environ.get("PETS_COURSE_THREADS", "(unset)")}, load average {os.getloadavg()[0]:.1f}')
    probe = Probe(folder, FEATURES_SETTINGS.size) if 'probe' in kinds else None
    results = {}
    for split in a.splits:
        for kind in kinds:
            l0 = os.getloadavg()[0]
            r = (probe.error(split) if kind == 'probe' else command(data, split) if kind == 'command'
                 else command(data, split, ['--head', 'images']) if kind == 'images' else plain(folder, split))
            results.setdefault(kind, []).append(r)
            print(f'split {split:2d} {kind:8s}: error {r["error"]:.3f}, wall {r["wall"]:6.1f} s, CPU {r["cpu"]:6.1f} s, load {l0:.1f}'
                  + (f', {r["seconds"]}' if 'seconds' in r else ''), flush=True)
        if a.json: Path(a.json).write_text(json.dumps(results, indent=1))
    mean = lambda k, f: statistics.fmean(r[f] for r in results[k])
    print(f'\n| run | error, mean of {len(a.splits)} splits | range | errors | / probe | wall s (mean) | wall / plain |')
    print('|---|---|---|---|---|---|---|')
    for k, rs in results.items():
        errs = [r['error'] for r in rs]
        vs_probe = f"{mean(k, 'error')/mean('probe', 'error'):.2f}" if 'probe' in results else 'n/a'
        vs_plain = f"{mean(k, 'wall')/mean('plain', 'wall'):.2f}" if 'plain' in results and k != 'probe' else ''
        print(f"| {k} | {mean(k, 'error'):.3f} | {min(errs):.3f} to {max(errs):.3f} | {', '.join(f'{e:.3f}' for e in errs)} | {vs_probe} "
              f"| {mean(k, 'wall'):.0f} | {vs_plain} |")
    print(f'# load average at the end {os.getloadavg()[0]:.1f}; the probe\'s wall time is its features (once, for every split) and its fit')

if __name__ == '__main__': main()
