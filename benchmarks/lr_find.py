"""Benchmark: the course's `lr_range_test` (pets_course.lr_finder) against fastai's `Learner.lr_find`.

Both run the same range test (the same schedule, the same smoothed loss, the same stop on divergence); ours keeps the
model's copy in memory where fastai saves it to `learn.path/models` and loads it back. This script times the two on
identically seeded learners in interleaved rounds (so both see the same machine load), checks in every round that they
recorded the same curve, and prints the medians of wall and CPU time and their ratio. Two workloads: the course's
synthetic learner (`pets_course.testing.synth_learner`, many rounds) and the tiny pets learner of the lesson
(EfficientNet-Lite0, 64 px, batches of 16, 40 batches). Times depend on the machine and on what else runs on it; nothing
is asserted about them. Not run by the test suite.

    python benchmarks/lr_find.py [--reps 20] [--pets-reps 3] [--threads 1]
"""
import argparse, os, statistics, tempfile, time
os.environ.setdefault('PETS_COURSE_DATA', 'tiny')
import torch
from fastai.vision.all import L, ProgressCallback
from pets_course.data import pets_dataloaders, pets_learner, seed_everything
from pets_course.testing import synth_learner
from pets_course.lr_finder import lr_range_test

def timed(f):
    "Run `f`; return its result, wall seconds and CPU seconds"
    w, c = time.perf_counter(), time.process_time()
    res = f()
    return res, time.perf_counter() - w, time.process_time() - c

def compare(make, reps:int, **kw) -> dict:
    "Median wall and CPU seconds of `lr_range_test` and `Learner.lr_find` on learners from `make()`, interleaved"
    times = {k: dict(wall=[], cpu=[]) for k in ('ours', 'fastai')}
    for i in range(reps + 1):  # round 0 warms up (imports, first allocations) and is not counted
        a = make()  # each learner is made (and seeded) just before its run, so both see the same batches
        rec, *t_ours = timed(lambda: lr_range_test(a, **kw))
        b = make()
        _, *t_fa = timed(lambda: b.lr_find(show_plot=False, suggest_funcs=None, **kw))
        assert rec.losses == L(b.recorder.losses).map(float), 'the two finders recorded different curves'
        if i == 0: continue
        for k, (w, c) in (('ours', t_ours), ('fastai', t_fa)): times[k]['wall'].append(w); times[k]['cpu'].append(c)
    return {k: {m: statistics.median(v) for m, v in d.items()} for k, d in times.items()}

def report(name:str, med:dict, reps:int):
    o, f = med['ours'], med['fastai']
    print(f"{name} (median of {reps}): lr_range_test {o['wall']:.3f} s wall, {o['cpu']:.3f} s CPU   "
          f"Learner.lr_find {f['wall']:.3f} s wall, {f['cpu']:.3f} s CPU   ratio {o['wall']/f['wall']:.2f}x wall, {o['cpu']/f['cpu']:.2f}x CPU")

def pets_maker():
    "A function that makes identically seeded tiny pets learners at 64 px, each with its own temporary folder"
    dls = pets_dataloaders(size=64, presize=64, bs=16)
    def make():
        seed_everything(42, dls)
        learn = pets_learner(dls, path=tempfile.mkdtemp())
        return learn.remove_cb(ProgressCallback)
    return make

def main():
    p = argparse.ArgumentParser(description="Time pets_course.lr_finder.lr_range_test against fastai's Learner.lr_find")
    p.add_argument('--reps', type=int, default=20, help='interleaved rounds on the synthetic learner (default 20)')
    p.add_argument('--pets-reps', type=int, default=3, help='interleaved rounds on the tiny pets learner (default 3; 0 skips it)')
    p.add_argument('--threads', type=int, default=1, help='torch threads (default 1, as under nbdev_test)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU')
    report('synth_learner, 100 batches', compare(synth_learner, args.reps, num_it=100), args.reps)
    if args.pets_reps: report('tiny pets, 64 px, 40 batches of 16', compare(pets_maker(), args.pets_reps, num_it=40), args.pets_reps)

if __name__ == '__main__': main()
