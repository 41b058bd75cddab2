"""`pets-course train` in 1 process against 2 processes under torchrun (gloo, CPU), on the same data and settings.

    python benchmarks/distributed.py [--seeds 42,2] [--size 64]

The whole tiny set (711 training images), Lite0, presize = size, 1 frozen + 2 unfrozen epochs, rate 1e-2, one torch
thread per process. Runs: 1 process bs 32; 2 processes bs 32 each (effective 64); 2 processes bs 16 each (effective 32);
2 processes bs 32 each at twice the rate. Each process records the batches it trained on in every epoch and a digest of
its weights after every step (the same audit as the test in nbs/17_distributed.ipynb), so the table shows batches per process
per epoch, whether the shares were disjoint, and at how many steps the weights were identical across processes.
Prints error rate, wall and CPU seconds (every process). Not a test: it asserts nothing.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

AUDIT = r'''
import os, sys, json, hashlib
import pets_course.cli as cli, pets_course.headless as headless
from fastai.callback.core import Callback
def digest(m): return hashlib.sha256(b''.join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()
class Audit(Callback):
    order = 12
    def __init__(self): self.epochs, self.digests = [], []
    def before_fit(self): self.on = not hasattr(self.learn, 'lr_finder')  # the fits of fine_tune, not the lr finder's
    def before_train(self):
        if not self.on: return
        dl, get, self.n = self.learn.dl, self.learn.dl.get_idxs, 0
        def record(): self.idxs = list(get()); return self.idxs
        dl.get_idxs = record
    def after_step(self):
        if self.on: self.n += 1; self.digests.append(digest(self.learn.model))
    def after_train(self):
        if not self.on: return
        del self.learn.dl.get_idxs
        self.epochs.append(dict(batches=self.n, items=[int(i) for i in self.idxs[:self.n*self.learn.dl.bs]]))
audit, make = Audit(), headless.make_learner
headless.make_learner = lambda *a, **k: make(*a, **k).add_cb(audit)
code = cli.main(sys.argv[1:])
(cli.Path(sys.argv[-1])/f"audit_{os.environ.get('RANK', '0')}.json").write_text(json.dumps(dict(epochs=audit.epochs, digests=audit.digests)))
sys.exit(code)
'''

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def run(n, bs, lr, seed, size, tmp):
    out = Path(tempfile.mkdtemp(dir=tmp))
    argv = ['train', '--data', 'tiny', '--size', size, '--presize', size, '--bs', bs, '--lr', lr, '--freeze-epochs', 1, '--epochs', 2,
            '--seed', seed, '--out', out]
    cmd = ([sys.executable] if n == 1 else ['torchrun', '--standalone', '--nproc_per_node', str(n)]) + [str(tmp/'audit.py')] + list(map(str, argv))
    c0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1', PETS_COURSE_THREADS='1'))
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if p.returncode: sys.exit(f'failed: {" ".join(cmd)}\n{p.stderr[-2000:]}')
    m = json.loads((out/'metrics.json').read_text())
    seen = [json.loads((out/f'audit_{r}.json').read_text()) for r in range(n)]
    batches = [[s['epochs'][e]['batches'] for s in seen] for e in range(len(seen[0]['epochs']))]
    disjoint = all(len(set().union(*[set(s['epochs'][e]['items']) for s in seen])) == sum(len(s['epochs'][e]['items']) for s in seen)
                   for e in range(len(seen[0]['epochs'])))
    same = sum(len(set(ds)) == 1 for ds in zip(*[s['digests'] for s in seen]))
    return dict(error=m['error_rate'], wall=wall, cpu=cpu, batches=batches, disjoint=disjoint, steps=len(seen[0]['digests']), same=same)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', default='42,2')
    ap.add_argument('--size', type=int, default=64)
    a = ap.parse_args()
    runs = [('1 process, bs 32', 1, 32, 1e-2), ('2 processes, bs 32 each (effective 64)', 2, 32, 1e-2),
            ('2 processes, bs 16 each (effective 32)', 2, 16, 1e-2), ('2 processes, bs 32 each, rate x2', 2, 32, 2e-2)]
    print(f'# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}')
    print('| run | seed | error | batches per process per epoch | disjoint shares | steps with identical weights | wall s | CPU s |')
    print('|---|---|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d); (tmp/'audit.py').write_text(AUDIT)
        for seed in map(int, a.seeds.split(',')):
            for name, n, bs, lr in runs:
                r = run(n, bs, lr, seed, a.size, tmp)
                print(f"| {name} | {seed} | {r['error']:.3f} | {r['batches']} | {r['disjoint']} | {r['same']}/{r['steps']} | {r['wall']:.0f} | {r['cpu']:.0f} |", flush=True)

if __name__ == '__main__': main()
