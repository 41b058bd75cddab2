"""Do the lessons' checks have teeth? Plant one plausible bug at a time in a lesson's exported code and see a check catch it.

  python benchmarks/planted_bugs.py [--only 01 03] [--jobs 2] [--out DIR]

Each bug below changes one line of an exported cell of 01-04 (a wrong sign, a missing log, a transposed matrix, an
off-by-one schedule, a forgotten unfreeze, a rule reading the wrong point of the curve, ...). For each, the notebook is
copied into a temporary copy of nbs/ with that one line changed, and run there with nbdev's `test_nb` (the cells
`nbdev_test` runs, in the tiny mode, on one thread). The notebook defines its own functions, so the bug is live in every
cell after it; the other notebooks and the installed package are untouched. A bug is caught when the notebook fails; the
table names the cell and the line that failed. The run first checks that every unchanged notebook passes, so that a
failure can only be the bug's. Slow (minutes); not a test: it exits with 1 when a bug got through.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (notebook, what the bug is, the exact text in an exported cell, what it becomes)
BUGS = [
    ('01_cross_entropy', 'softmax shifted by the minimum instead of the maximum (overflows)', 'm = x.amax(dim, keepdim=True)\n    e = torch.exp(x - m)', 'm = x.amin(dim, keepdim=True)\n    e = torch.exp(x - m)'),
    ('01_cross_entropy', 'softmax divided by the sum over the whole tensor, not each row', 'return e / e.sum(dim, keepdim=True)', 'return e / e.sum()'),
    ('01_cross_entropy', 'nll with the wrong sign', 'return _reduce(-log_probs[torch.arange(len(targ)), targ], reduction)', 'return _reduce(log_probs[torch.arange(len(targ)), targ], reduction)'),
    ('01_cross_entropy', 'nll picking the predicted class, not the target', 'return _reduce(-log_probs[torch.arange(len(targ)), targ], reduction)', 'return _reduce(-log_probs[torch.arange(len(targ)), log_probs.argmax(1)], reduction)'),
    ('01_cross_entropy', 'log_softmax without the log of the sum', 'return (x - m) - torch.exp(x - m).sum(dim, keepdim=True).log()', 'return (x - m) - torch.exp(x - m).sum(dim, keepdim=True)'),
    ('01_cross_entropy', 'cross_entropy on probabilities: the log is missing', 'return nll(log_softmax(acts), targ, reduction)', 'return nll(softmax(acts), targ, reduction)'),
    ('01_cross_entropy', 'the gradient not divided by the batch size', '- F.one_hot(targ, acts.shape[1])) / len(targ)', '- F.one_hot(targ, acts.shape[1]))'),
    ('01_cross_entropy', "the gradient with the one-hot's sign flipped", '(softmax(acts.detach()) - F.one_hot(', '(softmax(acts.detach()) + F.one_hot('),
    ('01_cross_entropy', "reduction 'mean' that adds up", "if reduction == 'mean': return loss.mean()", "if reduction == 'mean': return loss.sum()"),
    ('02_get_preds', 'confusion matrix transposed (rows predicted, columns actual)', 'torch.bincount(targs*n + decoded, minlength=n*n)', 'torch.bincount(decoded*n + targs, minlength=n*n)'),
    ('02_get_preds', 'most_confused sorted smallest count first', "order = np.argsort(-cm[rows, cols], kind='stable')", "order = np.argsort(cm[rows, cols], kind='stable')"),
    ('02_get_preds', 'most_confused counting the right answers too', '    np.fill_diagonal(cm, 0)\n', '\n'),
    ('02_get_preds', 'most_confused with an unstable sort (ties in any order)', "order = np.argsort(-cm[rows, cols], kind='stable')", "order = np.argsort(-cm[rows, cols], kind='quicksort')"),
    ('02_get_preds', 'top_losses without the log', 'losses = -preds[torch.arange(len(targs)), targs].log()', 'losses = 1 - preds[torch.arange(len(targs)), targs]'),
    ('02_get_preds', 'top_losses sorted smallest first', 'losses, idxs = losses.sort(descending=True, stable=True)', 'losses, idxs = losses.sort(descending=False, stable=True)'),
    ('03_lr_find', 'the schedule off by one batch (reaches end_lr at the last batch)', 'return [start * (end/start) ** (i/num_it) for i in range(num_it)]', 'return [start * (end/start) ** (i/(num_it-1)) for i in range(num_it)]'),
    ('03_lr_find', 'the smoothed loss without debiasing', 'smooth = (self.avg / (1 - self.beta**self.i)).item()', 'smooth = self.avg.item()'),
    ('03_lr_find', 'the moving average weighting the new loss by beta', 'self.avg = torch.lerp(loss, self.avg, self.beta)', 'self.avg = torch.lerp(self.avg, loss, self.beta)'),
    ('03_lr_find', 'stopping at 3 times the best loss instead of 4', 'if self.stop_div and smooth > 4*self.best', 'if self.stop_div and smooth > 3*self.best'),
    ('03_lr_find', 'minimum without the step back of 10', 'return lr_min / 10', 'return lr_min'),
    ('03_lr_find', 'steep reading the end of the steepest segment', 'return lrs[slopes.argmin()].item()', 'return lrs[slopes.argmin() + 1].item()'),
    ('03_lr_find', "valley's point at half the valley instead of fastai's int(n/3) + int(n/3/2)", 'return lrs[end - n + int(n/3) + int(n/3/2)].item()', 'return lrs[end - n + int(n/2)].item()'),
    ('03_lr_find', 'slide comparing the slopes the wrong way', 'while left >= 0 and abs(g[right] - g[left]) > thresh:', 'while left >= 0 and abs(g[right] - g[left]) < thresh:'),
    ('03_lr_find', 'the curve trimmed by a fifth at the start, not a tenth', 'lrs, losses = lrs[num_it//10:end], losses[num_it//10:end]', 'lrs, losses = lrs[num_it//5:end], losses[num_it//5:end]'),
    ('03_lr_find', 'the range test not putting the weights back', "    m.load_state_dict(snap['weights'])\n", '\n'),
    ('04_fine_tune', 'half a cosine the wrong way round', 'return start + (end - start) * (1 - torch.cos(', 'return start + (end - start) * (1 + torch.cos('),
    ('04_fine_tune', 'one-cycle positions off by one batch', 'pos = torch.arange(n_iter, dtype=torch.float64)[:, None] / n_iter', 'pos = torch.arange(n_iter, dtype=torch.float64)[:, None] / (n_iter - 1)'),
    ('04_fine_tune', 'one-cycle ending at lr_max/div instead of lr_max/div_final', 'return one_cycle_sched(n_iter, lr_max/div, lr_max, lr_max/div_final, pct_start)', 'return one_cycle_sched(n_iter, lr_max/div, lr_max, lr_max/div, pct_start)'),
    ('04_fine_tune', 'momentum rising while the rate rises', 'return one_cycle_sched(n_iter, *moms, pct_start=pct_start)', 'return one_cycle_sched(n_iter, moms[1], moms[0], moms[1], pct_start=pct_start)'),
    ('04_fine_tune', 'slice(lr_max) giving the body a hundredth', 'if not lr.start: return [lr_max/10]*(n_groups-1) + [lr_max]', 'if not lr.start: return [lr_max/100]*(n_groups-1) + [lr_max]'),
    ('04_fine_tune', 'a slice spread over one group too many', 'return even_mults(lr_min, lr_max, n_groups) if', 'return even_mults(lr_min, lr_max, n_groups + 1)[1:] if'),
    ('04_fine_tune', 'fine_tune_by_hand forgetting to unfreeze', '    learn.unfreeze()\n    learn.fit_one_cycle(epochs,', '    learn.fit_one_cycle(epochs,'),
    ('04_fine_tune', 'fine_tune_by_hand not halving base_lr', '    base_lr /= 2\n', '\n'),
    ('04_fine_tune', "fine_tune_by_hand's first step with the default warm-up", 'lr_groups(slice(base_lr), n), pct_start=0.99,', 'lr_groups(slice(base_lr), n),'),
    ('04_fine_tune', 'a group counted trainable when any of its tensors trains (its BatchNorm)', 'self.trainable_.append([all(p.requires_grad', 'self.trainable_.append([any(p.requires_grad'),
]

def exported_cells(nb:dict) -> list:
    "The code cells of `nb` that nbdev exports"
    return [c for c in nb['cells'] if c['cell_type'] == 'code' and re.match(r'\s*#\|\s*export', ''.join(c['source']))]

def planted(nb:dict, name:str, old:str, new:str) -> dict:
    "`nb` with `old` changed to `new` in the one exported cell that holds it"
    hits = [c for c in exported_cells(nb) if old in ''.join(c['source'])]
    src = ''.join(hits[0]['source']) if len(hits) == 1 else ''
    if len(hits) != 1 or src.count(old) != 1: raise SystemExit(f'{name}: {old!r} is not exactly once in one exported cell ({len(hits)} cells)')
    hits[0]['source'] = src.replace(old, new).splitlines(keepends=True)
    return nb

def plant(nbs:Path, name:str, old:str, new:str):
    "Change `old` to `new` in nbs/<name>.ipynb"
    fn = nbs/f'{name}.ipynb'
    fn.write_text(json.dumps(planted(json.loads(fn.read_text(encoding='utf-8')), name, old, new), indent=1), encoding='utf-8')

def culprit(log:str) -> str:
    "Where a failing notebook stopped: the cell number and the line of the cell that raised, and the error"
    cell = re.search(r'While Executing Cell #(\d+)', log)
    frames = re.findall(r'File "<ipython-input-[^"]*>", line \d+, in <module>\n\s*(.+)', log)
    err = [l for l in log.strip().splitlines() if re.match(r'\w*(Error|Exception)\b', l)]
    return f"cell {cell[1] if cell else '?'}: {frames[0].strip() if frames else '?'} -> {err[-1][:160] if err else '?'}"

def run_notebook(work:Path, name:str, env:dict) -> tuple:
    "Run nbs/<name>.ipynb of the copy `work` as nbdev_test does; (passed, where it failed, seconds)"
    code = ("import sys; from pathlib import Path; from nbdev.test import test_nb; from nbdev.config import get_config\n"
            f"ok, _ = test_nb(Path({str(work/'nbs'/(name + '.ipynb'))!r}), skip_flags=get_config().tst_flags.split())\n"
            "sys.exit(0 if ok else 1)")
    t = time.monotonic()
    p = subprocess.run([sys.executable, '-c', code], cwd=work, env=env, capture_output=True, text=True)
    return p.returncode == 0, culprit(p.stdout + p.stderr), time.monotonic() - t

def copy_repo(dst:Path) -> Path:
    "The files a notebook run needs (settings.ini, nbs/), copied to `dst`"
    shutil.copy2(REPO/'settings.ini', dst/'settings.ini')
    shutil.copytree(REPO/'nbs', dst/'nbs', ignore=shutil.ignore_patterns('pets_out', 'models', '.ipynb_checkpoints'))
    return dst

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', nargs='+', default=None, help='notebook prefixes, e.g. 01 03')
    ap.add_argument('--bugs', type=int, nargs='+', default=None, help="only these bugs, by their number in the table")
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    ap.add_argument('--out', default=None, help='where the logs go (default: benchmarks/planted-<time>)')
    a = ap.parse_args()
    numbered = [(i, b) for i, b in enumerate(BUGS) if (not a.only or b[0][:2] in a.only) and (not a.bugs or i+1 in a.bugs)]  # numbers as in BUGS
    bugs = [b for _, b in numbered]
    out = Path(a.out or REPO/'benchmarks'/f'planted-{time.strftime("%Y%m%d-%H%M%S")}'); out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ('PETS_COURSE_DATA', 'PETS_COURSE_SWEEP_LOG')}
    env.update(MPLBACKEND='Agg', PETS_COURSE_THREADS='1')
    with tempfile.TemporaryDirectory(prefix='planted-') as tmp:
        tmp = Path(tmp)
        for name, _, old, new in bugs: planted(json.loads((REPO/'nbs'/f'{name}.ipynb').read_text(encoding='utf-8')), name, old, new)
        for name in sorted({b[0] for b in bugs}):  # the unchanged notebook passes, so a failure below is the bug's
            ok, where, secs = run_notebook(copy_repo(Path(tempfile.mkdtemp(dir=tmp))), name, env)
            print(f'unchanged {name}: {"passes" if ok else "FAILS: " + where} ({secs:.0f} s)', flush=True)
            if not ok: sys.exit(f'{name} fails without a planted bug: fix that first')
        def one(i_bug):
            i, (name, what, old, new) = i_bug
            work = copy_repo(Path(tempfile.mkdtemp(dir=tmp)))
            plant(work/'nbs', name, old, new)
            ok, where, secs = run_notebook(work, name, env)
            print(f'{i+1:2}. {name}: {what}: {"NOT CAUGHT" if ok else "caught"} ({secs:.0f} s)', flush=True)
            return dict(n=i+1, nb=name, bug=what, caught=not ok, where=None if ok else where, seconds=round(secs))
        with ThreadPoolExecutor(a.jobs) as ex: results = list(ex.map(one, numbered))
    (out/'results.json').write_text(json.dumps(results, indent=1))
    print(f'\n{sum(r["caught"] for r in results)} of {len(results)} planted bugs caught\n')
    print('| # | notebook | planted bug | caught by |\n|---|---|---|---|')
    for r in results: print(f"| {r['n']} | {r['nb']} | {r['bug']} | {r['where'] if r['caught'] else '**not caught**'} |")
    sys.exit(0 if all(r['caught'] for r in results) else 1)

if __name__ == '__main__': main()
