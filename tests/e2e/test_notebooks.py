"""Every course notebook, opened in JupyterLab and run with Run > Run All Cells as a learner would, in each data mode
(E2E_MODES, default tiny, sample and folder; test ids `<mode>-<notebook>`, such as `sample-02_get_preds`): no cell may show an
error, a traceback, a widget that never rendered or a plot shown as text, every code cell must have run, and no
process of the notebook may have tried to reach the network (see `no_download` in conftest.py).

The book-scale cells (`#| full`, which `nbdev_test` skips) run too, as in a learner's copy: outside the book's mode
they print one line saying what they would show (`mode.book(...)`). Only cells nbdev never runs (`#| eval: false`)
are turned into raw cells. The notebooks run as copies in a temp folder, one folder per mode (nothing in nbs/ changes,
nothing is saved from the browser), with the mode's kernel spec, which sets PETS_COURSE_DATA.
Like `nbdev_test`, E2E_PARALLEL (default 2) notebooks run at a time, each in its own tab of the one browser and
with its own kernel on the one JupyterLab server, and the kernels then get one torch thread each.
"""
from __future__ import annotations
import time, traceback
import pytest
from conftest import NB_RESULTS, format_attempts, no_download
from lab import (ACTIVE, ARTIFACTS, CELL_CPU, CELL_TIMEOUT, MODES, NOTEBOOK_CPU, NOTEBOOK_TIMEOUT, PARALLEL, LabPage,
                 NotebookTimeout, course_notebooks, format_kernel_errors, format_problems, kernel_name, prepare_copy)

# notebook by notebook, each in every mode: tiny-00_data and sample-00_data run side by side (then folder-00_data) and
# each trains its mode's baseline, which the later notebooks then load instead of waiting for it, and the long sample-mode notebooks start
# early rather than at the end of the run
CASES = [(mode, nb) for nb in course_notebooks() for mode in MODES]

def case_id(mode, nb): return f'{mode}-{nb.stem}'

class NotebookRunner:
    "Runs the selected (mode, notebook) cases, `parallel` at a time in their own tabs, from one thread; results on demand"
    def __init__(self, lab, browser, cases, parallel, say):
        self.lab, self.browser, self.todo, self.parallel, self.say = lab, browser, list(cases), parallel, say
        self.active, self.results = {}, {}

    def _start(self, case):
        mode, nb = case
        rel = f'{mode}/nbs/{nb.name}'
        counts = prepare_copy(nb, self.lab.root/rel, kernel=kernel_name(mode))
        page = self.browser.new_page()
        lp = LabPage(self.lab, page, rel)
        lp.counts, lp.t_start = counts, time.time()
        self.active[case] = lp
        self.say(f'{case_id(*case)}: start')
        lp.open()
        lp.start_run(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, progress=self.say, cell_cpu=CELL_CPU, total_cpu=NOTEBOOK_CPU)

    def _finish(self, case, run=None, error=None):
        lp = self.active.pop(case)
        res = {'rel': lp.path, 'run': run, 'error': error, 'counts': getattr(lp, 'counts', {}),
               'start': getattr(lp, 't_start', None), 'end': time.time()}
        try:
            res['cpu'] = self.lab.kernel_cpu(lp.path)
            res['problems'], res['stats'], res['kernel_errors'] = lp.problems(), lp.stats(), list(lp.kernel_errors)
            res['cells'] = lp.state()['cells']
            if res['problems']:   # show the first problem, not the end of the notebook
                lp.page.locator(f'{ACTIVE} .jp-Notebook .jp-Cell').nth(res['problems'][0]['cell']).scroll_into_view_if_needed()
            lp.page.screenshot(path=str(ARTIFACTS/f'notebook-{case_id(*case)}.png'))
        except Exception as e:
            res['error'] = res['error'] or f'could not read the page: {e!r}'
        finally:
            self.lab.shutdown_kernels(lp.path)
            lp.page.close()
        self.say(f'{case_id(*case)}: ' + (f"done in {run['seconds']:.0f} s" if run else 'stopped'))
        self.results[case] = res

    def result(self, case) -> dict:
        "The result of `case`, running cases (this one first) until it is there"
        if case in self.todo: self.todo.remove(case); self.todo.insert(0, case)
        while case not in self.results:
            while self.todo and len(self.active) < self.parallel:
                nxt = self.todo.pop(0)
                try: self._start(nxt)
                except Exception: self._finish(nxt, error=traceback.format_exc(limit=3))
            for k, lp in list(self.active.items()):
                try:
                    run = lp.poll_run()
                    if run: self._finish(k, run=run)
                except NotebookTimeout as e: self._finish(k, error=f'stopped: {e}')
                except Exception: self._finish(k, error=traceback.format_exc(limit=3))
            if case not in self.results: time.sleep(1)
        return self.results[case]

@pytest.fixture(scope='module')
def runner(lab, browser, say, request):
    selected = [(it.callspec.params['mode'], it.callspec.params['nb']) for it in request.session.items
                if getattr(it, 'originalname', None) == 'test_notebook_runs_clean']
    return NotebookRunner(lab, browser, selected, PARALLEL, say)

@pytest.mark.parametrize('mode,nb', CASES, ids=[case_id(*c) for c in CASES])
def test_notebook_runs_clean(runner, lab, mode, nb, request):
    row = {'mode': mode, 'notebook': nb.stem}
    NB_RESULTS.append(row); request.node.e2e_row = row
    r = runner.result((mode, nb))
    where = f'[{mode}] {nb.name}'
    row.update(start=r['start'], end=r['end'], cpu=r.get('cpu'), full=r['counts'].get('flagged'))
    attempts, row['probes'] = no_download(lab, r['rel'])
    assert not r['error'], f'{where}: {r["error"]}'
    run, stats = r['run'], r['stats']
    secs, cell, src = run['slowest']
    row.update(wall=run['seconds'], code=stats['code'], images=stats['images'], widgets=stats['widgets'],
               slowest=f"code cell {cell} ({secs:.0f} s) `{(src or '')[:40]}`" if cell is not None else '')
    assert not r['problems'], f'{where}: a learner running all cells sees:\n{format_problems(r["problems"], where)}'
    assert not attempts, f'{where}: the notebook tried to reach the network (refused):\n{format_attempts(attempts)}'
    assert not r['kernel_errors'], f'{where}: the kernel sent errors:\n{format_kernel_errors(r["kernel_errors"])}'
    # Run All stops at the first error; a cell left without an execution count was never run
    not_run = [i for i, c in enumerate(r['cells']) if c['src'] and not any(ch.isdigit() for ch in c['prompt'])]
    assert not not_run, f'{where}: code cells {not_run} did not run (counting code cells from 0), the first: `{r["cells"][not_run[0]]["src"][:80]}`'
