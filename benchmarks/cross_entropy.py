"""Benchmark: the course's teaching `cross_entropy` (pets_course.losses) against PyTorch's `F.cross_entropy`.

The teaching version is written to read like its formula, `nll(log_softmax(acts), targ)`, not to be fast; this script
shows what that costs on a CPU. For each batch shape it checks that both give the same loss, then times them in
interleaved rounds (so both see the same machine load) and prints the medians and their ratio, for the forward pass
alone and for forward plus backward. Times depend on the machine and on what else runs on it; nothing is asserted
about them. Not run by the test suite.

Each step of the teaching version makes a full-size temporary tensor. Where the C allocator hands blocks that large
straight back to the system (glibc does, above its mmap threshold), every call pays for fresh memory pages, and on a
busy virtual machine that can dominate the large batch. To time the arithmetic alone, keep freed memory in the process:
`MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 python benchmarks/cross_entropy.py`.

    python benchmarks/cross_entropy.py [--reps 200] [--threads 1]
"""
import argparse, statistics, time
import torch
import torch.nn.functional as F
from pets_course.losses import cross_entropy

def median_times(fns:dict, reps:int) -> dict:
    "Median seconds of each function in `fns` over `reps` interleaved rounds, after one warm-up call each"
    for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}

def forward_backward(loss_func, acts, targ):
    "A function that computes `loss_func(acts, targ)` and its gradient, as one training step does"
    def f():
        a = acts.detach().requires_grad_()
        loss_func(a, targ).backward()
    return f

def bench(n:int, c:int, reps:int):
    "Print the medians and the ratio (ours / PyTorch) for a batch of `n` rows and `c` classes"
    g = torch.Generator().manual_seed(0)
    acts, targ = torch.randn(n, c, generator=g)*3, torch.randint(0, c, (n,), generator=g)
    assert torch.allclose(cross_entropy(acts, targ), F.cross_entropy(acts, targ), atol=1e-5)
    for what, fns in (('forward', dict(ours=lambda: cross_entropy(acts, targ), torch=lambda: F.cross_entropy(acts, targ))),
                      ('forward+backward', dict(ours=forward_backward(cross_entropy, acts, targ), torch=forward_backward(F.cross_entropy, acts, targ)))):
        med = median_times(fns, reps)
        print(f"({n:>5}, {c}) {what:<16} ours {med['ours']*1e6:8.1f} µs   F.cross_entropy {med['torch']*1e6:8.1f} µs   "
              f"ratio {med['ours']/med['torch']:.2f}x")

def main():
    p = argparse.ArgumentParser(description='Time pets_course.losses.cross_entropy against F.cross_entropy')
    p.add_argument('--reps', type=int, default=200, help='interleaved rounds per measurement (default 200)')
    p.add_argument('--threads', type=int, default=1, help='torch threads (default 1, as under nbdev_test)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; median of {args.reps} interleaved runs')
    for n in (64, 8192): bench(n, 37, args.reps)

if __name__ == '__main__': main()
