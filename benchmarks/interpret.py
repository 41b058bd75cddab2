"""Benchmark: the course's `confusion_matrix`, `most_confused` and `top_losses` (pets_course.interpret) against
fastai's `ClassificationInterpretation`, on the predictions of the cached baseline of a mode.

fastai's `confusion_matrix()` and `most_confused()` call `get_preds` on the validation set every time, then count with
a broadcast comparison; ours count predictions we already have. So we time fastai's methods twice: as a learner calls
them (inference included), and on the same tensors through a stand-in learner (counting only). Each figure is the
median of interleaved runs; every pair is first checked to give the same answer. Times depend on the machine and its
load; nothing is asserted about them. Not run by the test suite.

    python benchmarks/interpret.py [--mode tiny|sample|oxford|/a/folder] [--reps 20] [--threads N]
"""
import argparse, copy, statistics, time
import torch
from fastai.interpret import ClassificationInterpretation
from fastai.callback.progress import ProgressCallback
from pets_course.modes import course_mode
from pets_course.data import baseline_learner
from pets_course.interpret import confusion_matrix, most_confused, top_losses

def median_times(fns:list, reps:int) -> list:
    "Median seconds of each function in `fns`, over `reps` interleaved rounds"
    for f in fns: f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for ts, f in zip(times, fns):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]

class GivenPreds:
    "Stands in for a `Learner`: its `get_preds` returns the targets and decoded classes it was given, without inference"
    def __init__(self, targs, decoded): self.res = (None, targs, decoded)
    def get_preds(self, **kwargs): return self.res

def counting_only(interp, targs, decoded):
    "A copy of `interp` whose methods run fastai's counting code on `targs` and `decoded`"
    res = copy.copy(interp)
    res.learn = GivenPreds(targs, decoded)
    return res

def row(name, ours, theirs):
    print(f'{name:<48} ours {ours*1e3:9.3f} ms   fastai {theirs*1e3:9.3f} ms   fastai/ours {theirs/ours:8.1f}x')

def main():
    p = argparse.ArgumentParser(description="Time pets_course.interpret against fastai's ClassificationInterpretation")
    p.add_argument('--mode', '--kind', dest='mode', default=None, help='the mode whose cached baseline to use (default: PETS_COURSE_DATA, else the default mode)')
    p.add_argument('--reps', type=int, default=20, help='runs per measurement without inference (default 20; 3 with inference)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: PETS_COURSE_THREADS, else PyTorch default)')
    args = p.parse_args()
    mode = course_mode(args.mode, uses_baseline=True)
    if args.threads: torch.set_num_threads(args.threads)
    learn = baseline_learner()
    learn.remove_cb(ProgressCallback)  # no progress bars among the figures
    preds, targs = learn.get_preds()
    vocab, decoded = learn.dls.vocab, preds.argmax(1)
    interp = ClassificationInterpretation.from_learner(learn)
    print(f'mode {mode.name}, {len(targs)} validation images, {len(vocab)} classes, {torch.get_num_threads()} thread(s); medians')
    assert (confusion_matrix(preds, targs) == interp.confusion_matrix()).all()
    assert most_confused(preds, targs, vocab) == interp.most_confused()
    row('confusion_matrix, fastai with inference', *median_times([lambda: confusion_matrix(preds, targs), interp.confusion_matrix], 3))
    row('most_confused, fastai with inference', *median_times([lambda: most_confused(preds, targs, vocab), interp.most_confused], 3))
    g = torch.Generator().manual_seed(0)
    big_targs = torch.randint(0, len(vocab), (10_000,), generator=g)
    big_preds = torch.randn(10_000, len(vocab), generator=g).softmax(1)
    for name, p_, t_ in (('validation set', preds, targs), ('10,000 random items', big_preds, big_targs)):
        fa = counting_only(interp, t_, p_.argmax(1))
        assert (confusion_matrix(p_, t_) == fa.confusion_matrix()).all() and most_confused(p_, t_, vocab) == fa.most_confused()
        row(f'confusion_matrix, counting, {name}', *median_times([lambda: confusion_matrix(p_, t_), fa.confusion_matrix], args.reps))
        row(f'most_confused, counting, {name}', *median_times([lambda: most_confused(p_, t_, vocab), fa.most_confused], args.reps))
    # fastai's top_losses sorts the losses `from_learner` stored; ours computes them from the probabilities, then sorts
    torch.testing.assert_close(top_losses(preds, targs)[0], interp.top_losses()[0], atol=1e-4, rtol=0)
    row('top_losses, all items', *median_times([lambda: top_losses(preds, targs), interp.top_losses], args.reps))
    row('top_losses, k=9', *median_times([lambda: top_losses(preds, targs, 9), lambda: interp.top_losses(9)], args.reps))

if __name__ == '__main__': main()
