"""Every course notebook, opened in JupyterLab and run with Run > Run All Cells as a learner would: no cell may show
an error, a traceback, a widget that never rendered or a plot shown as text, and every code cell must have run.

The notebooks run as copies in a temp folder (nothing in nbs/ changes, nothing is saved from the browser); cells
`nbdev_test` skips (`#| full`: the real data set and downloaded weights) are turned into raw cells there.
Like `nbdev_test`, E2E_PARALLEL (default 2) notebooks run at a time, each in its own tab of the one browser and
with its own kernel on the one JupyterLab server, and the kernels then get one torch thread each.
"""
from __future__ import annotations
import time, traceback
import pytest
from conftest import TIMINGS
from lab import (ACTIVE, ARTIFACTS, CELL_TIMEOUT, NOTEBOOK_TIMEOUT, PARALLEL, LabPage, course_notebooks, format_kernel_errors,
                 format_problems, prepare_copy, tst_flags)

NOTEBOOKS = course_notebooks()

class NotebookRunner:
    "Runs the selected notebooks, `parallel` at a time in their own tabs, from one thread; results on demand"
    def __init__(self, lab, browser, nbs, parallel, say):
        self.lab, self.browser, self.todo, self.parallel, self.say = lab, browser, list(nbs), parallel, say
        self.active, self.results = {}, {}

    def _start(self, nb):
        rel = f'nbs/{nb.name}'
        n_off = prepare_copy(nb, self.lab.root/rel, tst_flags())
        page = self.browser.new_page()
        lp = LabPage(self.lab, page, rel)
        lp.n_off = n_off
        self.active[nb] = lp
        lp.open()
        lp.start_run(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, progress=self.say)

    def _finish(self, nb, run=None, error=None):
        lp = self.active.pop(nb)
        res = {'rel': lp.path, 'run': run, 'error': error, 'n_off': getattr(lp, 'n_off', 0)}
        try:
            res['problems'], res['stats'], res['kernel_errors'] = lp.problems(), lp.stats(), list(lp.kernel_errors)
            res['cells'] = lp.state()['cells']
            if res['problems']:   # show the first problem, not the end of the notebook
                lp.page.locator(f'{ACTIVE} .jp-Notebook .jp-Cell').nth(res['problems'][0]['cell']).scroll_into_view_if_needed()
            lp.page.screenshot(path=str(ARTIFACTS/f'notebook-{nb.stem}.png'))
        except Exception as e:
            res['error'] = res['error'] or f'could not read the page: {e!r}'
        finally:
            self.lab.shutdown_kernels(lp.path)
            lp.page.close()
        self.results[nb] = res

    def result(self, nb) -> dict:
        "The result of notebook `nb`, running notebooks (this one first) until it is there"
        if nb in self.todo: self.todo.remove(nb); self.todo.insert(0, nb)
        while nb not in self.results:
            while self.todo and len(self.active) < self.parallel:
                nxt = self.todo.pop(0)
                try: self._start(nxt)
                except Exception: self._finish(nxt, error=traceback.format_exc(limit=3))
            for k, lp in list(self.active.items()):
                try:
                    run = lp.poll_run()
                    if run: self._finish(k, run=run)
                except Exception: self._finish(k, error=traceback.format_exc(limit=3))
            if nb not in self.results: time.sleep(1)
        return self.results[nb]

@pytest.fixture(scope='module')
def runner(lab, browser, say, request):
    selected = [it.callspec.params['nb'] for it in request.session.items
                if getattr(it, 'originalname', None) == 'test_notebook_runs_clean']
    return NotebookRunner(lab, browser, selected, PARALLEL, say)

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(runner, nb):
    r = runner.result(nb)
    rel = r['rel']
    assert not r['error'], f'{rel}: {r["error"]}'
    run, stats = r['run'], r['stats']
    secs, cell, src = run['slowest']
    TIMINGS[f'notebook {nb.stem}'] = (f"{run['seconds']:6.1f} s; {stats['code']} code cells ({r['n_off']} full-mode cells off), "
                                     f"{stats['images']} images, {stats['widgets']} widgets; slowest cell {cell} "
                                     f"({secs:.0f} s) `{src[:40]}`")
    assert not r['problems'], f'{rel}: a learner running all cells sees:\n{format_problems(r["problems"])}'
    assert not r['kernel_errors'], f'{rel}: the kernel sent errors:\n{format_kernel_errors(r["kernel_errors"])}'
    # Run All stops at the first error; a cell left without an execution count was never run
    not_run = [i for i, c in enumerate(r['cells']) if c['src'] and not any(ch.isdigit() for ch in c['prompt'])]
    assert not not_run, f'{rel}: code cells {not_run} did not run'
