"""The three explorers of `pets_course.widgets`, live in JupyterLab: each renders as a real widget (sliders, not a
text repr), moving a slider with the keyboard or the mouse changes what it shows, and a screenshot of each is saved
in the artifacts folder.

The suite writes its own small notebook (one explorer per cell) into JupyterLab's temp folder and runs it there, in
tiny mode only: the explorers draw synthetic curves and do not read the data set. Screenshots are named
`explorer-tiny-<name>.png` (and `FAILED-tiny-<test>.png`).
E2E_EXPLORERS_SETUP=<file.py> runs that file's code in the notebook right after the imports: a way to check that
the suite catches a broken widget (for example one whose update raises) without touching the course's files.
"""
from __future__ import annotations
import json, os, re, time
from pathlib import Path
import pytest
from conftest import TIMINGS, format_attempts, no_download
from lab import (ARTIFACTS, CELL_CPU, CELL_TIMEOUT, NOTEBOOK_CPU, NOTEBOOK_TIMEOUT, WIDGET, WIDGET_TIMEOUT, LabPage,
                 format_kernel_errors, format_problems, kernel_name, make_notebook)

MODE = 'tiny'
NB = f'{MODE}/nbs/_e2e_explorers.ipynb'
ERROR_RE = re.compile(r'\b\w*(Error|Exception)\b')   # an explorer whose update failed shows `SomeError: message`

# A recorded-looking learning rate finder curve: flat, a long descent, then the blow-up
LR_CURVE = """import numpy as np
lrs = np.logspace(-6, 0, 60)
x = np.log10(lrs)
losses = 3.6 - 1.4/(1 + np.exp(-2.5*(x + 3))) + 0.5*np.exp(3*(x + 0.7))"""

CELLS = {
    'imports': 'from pets_course.widgets import *',
    'softmax': 'sm = softmax_explorer()\nsm',
    'lr_find': f'{LR_CURVE}\nlf = lr_find_explorer(lrs, losses)\nlf',
    'one_cycle': 'oc = one_cycle_explorer()\noc',
}

def explorer_notebook() -> tuple[dict, int]:
    "The explorers notebook, and the index of its first explorer cell"
    cells = [CELLS['imports']]
    setup = os.environ.get('E2E_EXPLORERS_SETUP')
    if setup: cells.append(Path(setup).read_text())
    return make_notebook(cells + [CELLS[k] for k in ('softmax', 'lr_find', 'one_cycle')], kernel_name(MODE)), len(cells)

@pytest.fixture(scope='module')
def explorers(lab, browser, say):
    "The explorers notebook, open and run once (Run > Run All Cells) for the tests of this module"
    nb, first = explorer_notebook()
    p = lab.root/NB
    p.write_text(json.dumps(nb, indent=1), encoding='utf-8')
    page = browser.new_page()
    lp = LabPage(lab, page, NB)
    try:
        t = time.monotonic()
        lp.open()
        lp.run_all(CELL_TIMEOUT, NOTEBOOK_TIMEOUT, progress=say, cell_cpu=CELL_CPU, total_cpu=NOTEBOOK_CPU)
        TIMINGS['explorers notebook open + run all'] = time.monotonic() - t
        problems = lp.problems()
        assert not problems, f'the explorers notebook shows:\n{format_problems(problems, f"[{MODE}] {NB}")}'
        assert not lp.kernel_errors, f'the explorers notebook: the kernel sent errors:\n{format_kernel_errors(lp.kernel_errors)}'
        lp.cells = {k: first + i for i, k in enumerate(('softmax', 'lr_find', 'one_cycle'))}
        yield lp
    finally:
        lab.shutdown_kernels(NB)
        page.close()

@pytest.fixture(autouse=True)
def screenshot_on_failure(request, explorers):
    yield
    rep = getattr(request.node, 'rep_call', None)
    if rep is not None and rep.failed:
        try: explorers.page.screenshot(path=str(ARTIFACTS/f'FAILED-{MODE}-{request.node.name}.png'))
        except Exception: pass

# -- reading and moving a widget ---------------------------------------------------------------------------------

def widget(lp, name):
    "The rendered widget in the output of explorer `name`'s cell: a real widget view, not a text repr"
    cell = lp.cell(lp.cells[name])
    w = cell.locator(WIDGET).first
    try: w.wait_for(state='visible', timeout=60_000)
    except Exception:
        raise AssertionError(f'{name}: no rendered widget in its cell; the output shows: {cell.locator(".jp-Cell-outputArea").inner_text()[:500]!r}')
    return w

def slider(w, label):
    "The slider of `w` whose label is `label`"
    s = w.locator('.widget-slider').filter(has=w.page.locator('label.widget-label', has_text=re.compile(f'^{re.escape(label)}$')))
    assert s.count() == 1, f'expected one slider labelled {label!r}, found {s.count()}'
    return s

def value(s) -> float:
    "The value slider `s` shows in its readout: the widget model's value (the handle's aria-valuenow can run ahead of it)"
    return float(s.locator('.widget-readout').inner_text())

def look(w) -> dict:
    "What the explorer shows now: its readout text, the image's URL and pixels"
    img = w.locator('img').first
    return {'readout': w.locator('.widget-html-content').first.inner_text(), 'src': img.get_attribute('src'),
            'png': img.screenshot()}

def wait_for_update(lp, w, before:dict, what:str, caught_up) -> dict:
    """Wait until the picture and the readout of `w` have changed from `before` and the readout agrees with the
    sliders (`caught_up(readout)`: the kernel has handled the last move), then a second more to see it stay put"""
    deadline, last, ok = time.monotonic() + WIDGET_TIMEOUT, None, 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {'readout': w.locator('.widget-html-content').first.inner_text(), 'src': w.locator('img').first.get_attribute('src')}
        if ERROR_RE.search(now['readout']): raise AssertionError(f'{what}: the explorer shows an error: {now["readout"]!r}')
        good = now['readout'] != before['readout'] and now['src'] != before['src'] and caught_up(now['readout'])
        ok = ok + 1 if good and now == last else 0
        last = now
        if ok >= 2: return look(w)
    raise AssertionError(f'{what}: the explorer did not show the new value within {WIDGET_TIMEOUT:.0f} s; its readout now:\n'
                         f'{last and last["readout"]}\nkernel errors:\n{format_kernel_errors(lp.kernel_errors)}')

def press(lp, handle, key, n):
    handle.scroll_into_view_if_needed(); handle.focus()
    for _ in range(n): lp.page.keyboard.press(key)

def drag(lp, s, frac):
    "Drag the handle of slider `s` with the mouse to `frac` of its track"
    s.scroll_into_view_if_needed()
    track, handle = s.locator('.noUi-base').bounding_box(), s.locator('.noUi-handle').bounding_box()
    m = lp.page.mouse
    m.move(handle['x'] + handle['width']/2, handle['y'] + handle['height']/2); m.down()
    for f in (0.25, 0.5, 0.75, 1):   # a few steps, as a hand would
        x0 = handle['x'] + handle['width']/2
        m.move(x0 + f*(track['x'] + frac*track['width'] - x0), track['y'] + track['height']/2)
    m.up()

def numbers(text): return [float(x) for x in re.findall(r'-?\d+(?:\.\d+)?(?:e[+-]?\d+)?', text)]

def mark(lp) -> tuple:
    "Where the server log and the kernel's error messages stand now"
    return lp.lab.log_size(), len(lp.kernel_errors)

def check_clean(lp, w, name, since):
    """No error shown in the readout or in any output, and, since `since` (from `mark`), none sent by the kernel
    (a widget callback that raises: JupyterLab puts it in its log console, not in the cell) or in its log"""
    log_from, n_errors = since
    readout = w.locator('.widget-html-content').first.inner_text()
    assert not ERROR_RE.search(readout), f'{name}: the explorer shows an error: {readout!r}'
    problems = lp.problems()
    assert not problems, f'{name}: the notebook shows:\n{format_problems(problems, f"[{MODE}] {NB}")}'
    errors = lp.kernel_errors[n_errors:]
    assert not errors, f'{name}: the kernel sent errors:\n{format_kernel_errors(errors)}'
    log = lp.lab.log_since(log_from)
    assert 'Traceback' not in log, f'{name}: the kernel logged a traceback:\n{log[-3000:]}'
    attempts, _ = no_download(lp.lab, lp.path)
    assert not attempts, f'{name}: the explorers notebook tried to reach the network (refused):\n{format_attempts(attempts)}'

def shoot(w, name):
    "Screenshot of widget `w`, made tall enough and centred so that JupyterLab's toolbars cover none of it"
    page, box = w.page, w.bounding_box()
    vp = page.viewport_size
    if box and box['height'] + 300 > vp['height']: page.set_viewport_size({'width': vp['width'], 'height': int(box['height']) + 300})
    w.evaluate('e => e.scrollIntoView({block: "center"})')
    w.screenshot(path=str(ARTIFACTS/f'explorer-{MODE}-{name}.png'))

# -- the tests ----------------------------------------------------------------------------------------------------

def test_softmax_explorer(explorers):
    "Keyboard: ArrowRight on the `teddy` slider raises its activation; the probabilities follow and still sum to 1"
    lp = explorers; since = mark(lp)
    w = widget(lp, 'softmax')
    assert w.locator('.widget-slider').count() >= 3, 'one slider per class expected'
    s = slider(w, 'teddy')
    before, v0 = look(w), value(s)
    shoot(w, 'softmax-before')
    press(lp, s.locator('.noUi-handle'), 'ArrowRight', 40)
    time.sleep(1); v1 = value(s)
    assert v1 > v0, f'the teddy slider did not move: {v0} -> {v1}'
    # the readout's table has a row per class: class, act, exp(act/T), softmax; then a row `sum`
    row = lambda text, cls: numbers(re.search(rf'^{cls}\b(.*)$', text, re.M)[1])
    after = wait_for_update(lp, w, before, 'softmax: teddy moved', lambda r: abs(row(r, 'teddy')[0] - v1) < 0.006)
    assert after['png'] != before['png'], 'the bar chart did not change'
    p0, p1 = [row(before['readout'], c)[-1] for c in ('grizzly', 'black', 'teddy')], [row(after['readout'], c)[-1] for c in ('grizzly', 'black', 'teddy')]
    assert p1[2] > p0[2] and p1[0] < p0[0] and p1[1] <= p0[1], f'teddy did not take probability from the others: {p0} -> {p1}'
    assert abs(row(after['readout'], 'sum')[-1] - 1) < 1e-3
    check_clean(lp, w, 'softmax', since)
    shoot(w, 'softmax')

def test_lr_find_explorer(explorers):
    "Mouse: drag the point along the curve; the marked learning rate moves with it"
    lp = explorers; since = mark(lp)
    w = widget(lp, 'lr_find')
    s = slider(w, 'point')
    before = look(w)
    shoot(w, 'lr_find-before')
    i0, n = int(value(s)), int(float(s.locator('.noUi-handle').get_attribute('aria-valuemax')))
    drag(lp, s, 0.85 if i0 < n/2 else 0.15)
    time.sleep(1); i1 = int(value(s))
    assert i1 != i0, f'the point slider did not move ({i0})'
    after = wait_for_update(lp, w, before, 'lr_find: point dragged', lambda r: re.search(rf'point {i1} of', r))
    lr = lambda text: float(re.search(r'lr = ([\d.e+-]+)', text)[1])
    assert (lr(after['readout']) > lr(before['readout'])) == (i1 > i0), 'the marked learning rate did not follow the point'
    assert after['png'] != before['png'], 'the plot did not change'
    check_clean(lp, w, 'lr_find', since)
    shoot(w, 'lr_find')

def test_one_cycle_explorer(explorers):
    "Keyboard: raise lr_max and pct_start; the schedule plot and the groups' peak learning rates change"
    lp = explorers; since = mark(lp)
    w = widget(lp, 'one_cycle')
    s_lr, s_pct = slider(w, 'lr_max'), slider(w, 'pct_start')
    before = look(w)
    shoot(w, 'one_cycle-before')
    # the readout: `warm-up: about W of N batches`, then a table with a row per group: group, peak lr, start, end
    peaks = lambda text: [numbers(m[1])[0] for m in re.finditer(r'^\d+\s+(\S+)', text, re.M)]
    warm = lambda text: int(re.search(r'about (\d+) of', text)[1])
    press(lp, s_lr.locator('.noUi-handle'), 'ArrowRight', 10)     # lr_max up a few steps (of 0.05 decades)
    time.sleep(1); lr_max = value(s_lr)
    mid = wait_for_update(lp, w, before, 'one_cycle: lr_max moved', lambda r: peaks(r) and abs(peaks(r)[-1]/lr_max - 1) < 0.01)
    press(lp, s_pct.locator('.noUi-handle'), 'ArrowRight', 20)    # pct_start up
    time.sleep(1); pct = value(s_pct)
    after = wait_for_update(lp, w, mid, 'one_cycle: pct_start moved', lambda r: abs(warm(r) - pct*100) <= 1)
    p0, p1 = peaks(before['readout']), peaks(after['readout'])
    assert p0 and len(p0) == len(p1) and all(b > a for a, b in zip(p0, p1)), f'peak learning rates did not grow: {p0} -> {p1}'
    assert warm(after['readout']) > warm(before['readout']), 'the warm-up did not get longer'
    assert after['png'] != mid['png'] and mid['png'] != before['png'], 'the schedule plot did not change'
    check_clean(lp, w, 'one_cycle', since)
    shoot(w, 'one_cycle')
