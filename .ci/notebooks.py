"""The course's notebooks, their flags and their cells' directives, read with nbdev itself: the one helper the tooling
of .ci/ (readme.py, the plan below) and tests/ (the browser suite's tests/e2e/lab.py) share, so that nothing there
parses a directive, reads settings.ini or lists the notebooks by hand.

  python .ci/notebooks.py plan FILE     write what `nbdev_test` would execute, notebook by notebook, as JSON, for a
                                        runner in an environment without nbdev (.ci/run_plan.py)
  python .ci/notebooks.py compile       check that every code cell of every notebook compiles, the cells `nbdev_test`
                                        skips included (`#| full`, `#| eval: false`): a learner's Run All runs them

`nbdev_test` lists the notebooks with `nbglob` (leaving out those `_keep_file` drops), skips a notebook whose front matter
says `skip_exec`, and in each notebook runs every code cell but those marked `#| eval: false`, those carrying a flag of
settings.ini's `tst_flags` (`#| full`) and those that call `nbdev_export(`. `run_plan` gives the same choice.
"""
import json, sys
from pathlib import Path
from fastcore.basics import AttrDict, str2bool
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.process import NBProcessor, extract_directives, first_code_ln
from nbdev.frontmatter import FrontmatterProc
from nbdev.test import _keep_file

ROOT = Path(__file__).resolve().parent.parent

def config(): "This repository's settings.ini, as nbdev reads it"; return get_config(path=ROOT)

def tst_flags() -> set:
    "The flags of settings.ini's `tst_flags`: cells `nbdev_test` skips unless asked"
    return set(str(config().get('tst_flags', '')).replace('|', ' ').split())

def notebooks(path=None) -> list:
    "The notebooks `nbdev_test` runs, in its order: those of `path`, by default settings.ini's `nbs_path`"
    return [f.absolute() for f in sorted(nbglob(path or config().config_path/config().nbs_path, as_path=True)) if _keep_file(f, '.notest')]

def directives(source:str) -> dict:
    """The `#| key value` lines at the top of a code cell's `source`, as nbdev reads them (`extract_directives`), with
    Quarto's colon dropped from the keys: `#| eval: false` gives {'eval': ['false']}, `#| full` {'full': []}"""
    return {k.rstrip(':'): v for k, v in extract_directives(AttrDict(source=source), remove=False).items()}

def without_directives(source:str) -> str:
    "`source` from its first line of code on, where nbdev's `first_code_ln` finds it: without the `#|` lines of nbdev and Quarto"
    lines = source.splitlines(True)
    return ''.join(lines[first_code_ln(lines) if first_code_ln(lines) is not None else len(lines):])

def skipped(cell, flags:set) -> bool:
    "Whether `nbdev_test` leaves out `cell` (one of `NBProcessor`'s cells, with its `directives_`)"
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
    d = getattr(cell, 'directives_', {}) or {}
    return d.get('eval:', [''])[0].lower() == 'false' or bool(flags & d.keys())

def run_plan(flags:set|None=None) -> list:
    "For every notebook `nbdev_test` runs: its name, its folder and the sources of the code cells it executes"
    flags = tst_flags() if flags is None else flags
    plan = []
    for fn in notebooks():
        nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
        if str2bool(getattr(nb, 'frontmatter_', {}).get('skip_exec', False)): continue
        plan.append(dict(name=fn.name, folder=str(fn.parent), cells=[c.source for c in nb.cells if not skipped(c, flags)]))
    return plan

def uncompilable() -> list:
    "Every code cell of every notebook that Python cannot compile, once IPython has turned its magics into Python: (notebook, cell, error)"
    from IPython.core.inputtransformer2 import TransformerManager
    tm, bad = TransformerManager(), []
    for fn in notebooks():
        for i, cell in enumerate(NBProcessor(fn, process=True).nb.cells):
            if cell.cell_type != 'code': continue
            try: compile(tm.transform_cell(cell.source), f'{fn.name} cell {i}', 'exec')
            except SyntaxError as e: bad.append((fn.name, i, f'{e.msg} (line {e.lineno}): {(e.text or "").strip()}'))
    return bad

if __name__ == '__main__':
    if sys.argv[1:] == ['compile']:
        bad = uncompilable()
        for name, i, err in bad: print(f'{name}, cell {i}: {err}')
        sys.exit(f'FAIL: {len(bad)} code cells do not compile' if bad else print(f'every code cell of {len(notebooks())} notebooks compiles'))
    if sys.argv[1:2] != ['plan'] or len(sys.argv) != 3: sys.exit(__doc__)
    plan = run_plan()
    Path(sys.argv[2]).write_text(json.dumps(plan, indent=1))
    print(f'wrote the plan of {len(plan)} notebooks to {sys.argv[2]}')
