"""How soon each lesson reaches the chapter: the code cells a learner reads before the first cell that runs the chapter's own
code, and how much of each lesson is machinery (hidden, or folded in JupyterLab).

  python benchmarks/lessons.py [--rev REV]      (REV: a git revision to measure instead of the working tree)

A code cell counts as read unless it is `#| hide` or folded (`jupyter.source_hidden` in its metadata, what JupyterLab's
"Collapse Selected Code" stores); the first chapter cell is the first code cell that matches the notebook's pattern below.
"""
import argparse, json, re, subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST = {  # notebook: (what the chapter does first there, a pattern for the cell that does it)
    '00_data': ('the 37 breeds, 12 cats and 25 dogs', r'CAT_BREEDS ='),
    '01_cross_entropy': ('one batch and get_preds', r'get_preds\('),
    '02_get_preds': ('get_preds on the validation set', r'get_preds\('),
    '03_lr_find': ('fine_tune(1, base_lr=0.1)', r'learn\.fine_tune\(1, base_lr=0\.1\)'),
    '04_fine_tune': ('the pets learner trains its head (fit_one_cycle)', r'learn\.fit_one_cycle\(R\.head_epochs'),
    '04_fine_tune, slice': ("the chapter's slice on the pets learner", r'lr_max=R\.disc_lr'),
    '05_questionnaire': ('the data the questions use', r'get_pets\(|get_image_files\('),
    '07_widgets': ('the first explorer of a chapter idea', r'SoftmaxExplorer\('),
}

def cells(name:str, rev:str|None) -> list:
    fn = f'nbs/{name}.ipynb'
    text = subprocess.run(['git', 'show', f'{rev}:{fn}'], cwd=REPO, capture_output=True, text=True, check=True).stdout if rev else (REPO/fn).read_text()
    return [c for c in json.loads(text)['cells'] if c['cell_type'] == 'code']

def machinery(c) -> bool:
    src = ''.join(c['source'])
    return bool(re.match(r'\s*#\|\s*hide\b', src)) or bool(c.get('metadata', {}).get('jupyter', {}).get('source_hidden'))

def measure(rev=None) -> list:
    rows = []
    for key, (what, pat) in FIRST.items():
        cs = cells(key.split(',')[0], rev)
        first = next(i for i, c in enumerate(cs) if re.search(pat, ''.join(c['source'])))
        before = cs[:first]
        rows.append(dict(notebook=key, first=what, code_cells=len(cs), before=len(before), read_before=sum(not machinery(c) for c in before),
                         machinery=sum(machinery(c) for c in cs)))
    return rows

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rev', default=None)
    a = ap.parse_args()
    print('| notebook | the first chapter cell | code cells | before it | read before it | hidden or folded (share) |')
    print('|---|---|---|---|---|---|')
    for r in measure(a.rev):
        print(f"| {r['notebook']} | {r['first']} | {r['code_cells']} | {r['before']} | {r['read_before']} | {r['machinery']} ({r['machinery']/r['code_cells']:.0%}) |")
