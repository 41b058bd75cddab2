"""The chapter's recipe written as a plain fastai script, with no help from pets_course but the Lite0 backbone.

This is what `real_photos.py` compares `pets-course train` with. It prints one JSON line:
error rate, wall and CPU seconds, and how long the lr finder and `fine_tune` took.

    python benchmarks/plain_fastai.py FOLDER [--seed 42] [--split-seed 42]
"""
import argparse, json, os, resource, tempfile, time, warnings
t_start = time.time()
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('folder', help='a folder of Oxford-named photos (<breed>_<number>.jpg)')
p.add_argument('--seed', type=int, default=42)
p.add_argument('--split-seed', type=int, default=42, help='seed of the random 20% validation split (pets-course: PETS_COURSE_SEED)')
args = p.parse_args()

warnings.simplefilter('ignore')
from fastai.vision.all import *
from pets_course.backbone import efficientnet_lite0  # ImageNet weights from PyPI; registers its split with fastai

set_seed(args.seed, reproducible=True)
path = Path(args.folder)
# the files sorted, as pets_course does, so that the seeded split puts the same photos in the validation set on both sides
# (get_image_files lists them in the file system's order, which differs from machine to machine)
pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p).sorted(), splitter=RandomSplitter(seed=args.split_seed),
                 get_y=using_attr(RegexLabeller(r'(.+)_\d+.jpg$'), 'name'),
                 item_tfms=Resize(224), batch_tfms=aug_transforms(size=160, min_scale=0.75))
dls = pets.dataloaders(path, bs=32)  # fastai's default num_workers
learn = vision_learner(dls, efficientnet_lite0, metrics=error_rate, path=tempfile.mkdtemp())
learn.remove_cb(ProgressCallback); learn.logger = noop  # no progress bars in a log
t0 = time.time()
suggestion = learn.lr_find(show_plot=False)  # the chapter looks at the curve; the rate below is the one the recipe uses
t1 = time.time()
learn.fine_tune(4, base_lr=2e-3, freeze_epochs=2)
t2 = time.time()
error = float(learn.validate()[1])
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps(dict(error=round(error, 4), valley=float(suggestion.valley), seed=args.seed, num_workers=dls.train.num_workers,
                      threads=torch.get_num_threads(), lr_find_s=round(t1 - t0, 1), fine_tune_s=round(t2 - t1, 1),
                      wall_s=round(time.time() - t_start, 1), cpu_s=round(me.ru_utime + me.ru_stime, 1),
                      child_cpu_s=round(kids.ru_utime + kids.ru_stime, 1))))
