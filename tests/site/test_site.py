"""The course website (`python .ci/site.py` -> _site/, built by Sphinx with myst-nb and sphinx-book-theme) opened in
headless Chromium, page by page.

Every page must load from this machine alone (MathJax, fonts and scripts included), show no error or traceback in any
cell, draw every plot as an image that loads (widgets as a snapshot with their plot, never as text like
`VBox(children=...)`), typeset its formulas, and every link inside the site must land on a page that exists, at an
anchor that exists. The theme's search must find the cross-entropy lesson for "cross-entropy". Screenshots of the front
page, a lesson, the search results, an API page and a widget snapshot go to tests/site/artifacts/ (or SITE_SHOTS).
"""
from __future__ import annotations
import json, re, sys
from urllib.parse import urlsplit, unquote
import pytest
from sitelib import REPO, SHOTS, SITE, SUMMARY
sys.path.insert(0, str(REPO/'.ci'))
from notebooks import directives  # .ci/notebooks.py: directives as nbdev reads them

# the sidebar: the front page, the chapter in order, then the appendix (and the API pages after them)
def _numbered(lo:int, hi:int) -> list:
    "The notebooks numbered lo to hi-1, in order: the chapter is 00-09, the appendix 10 and up"
    return sorted(p.stem for p in (REPO/'nbs').glob('[0-9][0-9]_*.ipynb') if lo <= int(p.stem[:2]) < hi)

def _module(stem:str) -> str|None:
    "The module the notebook `stem` exports to (its `#| default_exp`, read by nbdev: .ci/notebooks.py), or None"
    cells = json.loads((REPO/'nbs'/f'{stem}.ipynb').read_text(encoding='utf-8'))['cells']
    return next((d['default_exp'][0] for c in cells if c['cell_type'] == 'code' and 'default_exp' in (d := directives(''.join(c['source'])))), None)

CHAPTER = ['index'] + _numbered(0, 10)   # the sidebar's order: the front page, the lessons, the appendix
APPENDIX = _numbered(10, 100)
MODULES = [m for s in CHAPTER[1:] + APPENDIX if (m := _module(s))]   # one API page per module, in the notebooks' order

def page_name(stem:str) -> str: return re.sub(r'^\d+[a-zA-Z0-9]*_', '', stem) + '.html'   # nbdev's rule
def html_id(name:str) -> str: return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')  # docutils' ids, roughly

# what must never appear as a cell's text: a plot or a widget shown as its repr, a widget that needed a kernel
AS_TEXT = re.compile(r'^<Figure size \d+x\d+ with \d+ Axes>$|(?:^|\n)\s*(?:VBox|HBox|Box|Image|FloatSlider|IntSlider|'
                     r'FloatLogSlider|Dropdown|Output)\((?:children|value|layout|description)=|Loading widget|'
                     r'Error displaying widget', re.M)

# what one page holds, once MathJax (if the page loads it) has typeset every formula; myst-nb's cell markup
_PAGE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const outs = [...document.querySelectorAll('.cell_output .output')];
  return {
    title: document.title,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), url: a.href})),
    assets: [...document.querySelectorAll('link[href], script[src], iframe[src], img[src]')]
            .filter(e => !(e.tagName == 'LINK' && /canonical|alternate|index|search|next|prev/.test(e.rel)))
            .map(e => e.href || e.src),
    images: [...document.querySelectorAll('img')].map(i => ({src: (i.getAttribute('src') || '').slice(0, 60),
             ok: i.complete && i.naturalWidth > 0, output: !!i.closest('.cell_output'),
             widget: !!i.closest('.site-widget')})),
    errors: outs.filter(o => o.matches('.traceback, .error')).map(o => o.innerText.slice(0, 300)),
    outputs: outs.map(o => ({cls: o.className, text: o.innerText.slice(0, 2000)})),
    widgets: [...document.querySelectorAll('.site-widget')].map(w => ({imgs: w.querySelectorAll('img').length,
              text: w.innerText.slice(0, 300)})),
    failed: [...document.querySelectorAll('.site-failed')].map(e => e.innerText),
    sidebar: [...document.querySelectorAll('nav.bd-docs-nav a.reference')].map(a => a.href),
    math: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('.math mjx-container').length,
    math_errors: document.querySelectorAll('mjx-merror').length,
    cells: document.querySelectorAll('.cell').length,
  };
}"""

def site_pages() -> list[str]:
    "Every page of the site (MathJax's own folder under _static/ is not a page)"
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob('*.html')
                  if not p.relative_to(SITE).as_posix().startswith('_static/')) if SITE.exists() else []

@pytest.fixture(scope='session')
def crawl(site, server, browser):
    "Open every page of the site once; what each page holds, by its path in the site"
    pages, console = {}, {}
    page = browser.new_page()
    page.on('pageerror', lambda e: console.setdefault(page.url, []).append(str(e)))
    for rel in site_pages():
        resp = page.goto(server + rel, wait_until='load')
        info = page.evaluate(_PAGE_JS)
        info['status'] = resp.status if resp else None
        info['url'] = page.url
        pages[rel] = info
    page.close()
    SUMMARY['pages opened'] = len(pages)
    SUMMARY['images (all loaded?)'] = (f'{sum(len(p["images"]) for p in pages.values())} '
                                       f'({sum(i["ok"] for p in pages.values() for i in p["images"])} loaded)')
    SUMMARY['plots and widget images in outputs'] = sum(i['output'] for p in pages.values() for i in p['images'])
    SUMMARY['widget snapshots'] = sum(len(p['widgets']) for p in pages.values())
    SUMMARY['links'] = sum(len(p['links']) for p in pages.values())
    SUMMARY['formulas (typeset by the local MathJax)'] = (f'{sum(p["math"] for p in pages.values())} '
                                                         f'({sum(p["typeset"] for p in pages.values())} typeset)')
    return dict(pages=pages, console=console, server=server, remote=browser.remote_requests)

PAGES = site_pages()

@pytest.mark.parametrize('rel', PAGES or ['(no site built)'])
def test_page(crawl, rel):
    "The page loads, no cell failed, every image loads, every formula is typeset, no plot or widget shows as text"
    p = crawl['pages'].get(rel)
    assert p is not None, f'{rel}: not in the site {SITE}'
    assert p['status'] == 200, f'{rel}: HTTP {p["status"]}'
    assert not p['failed'], f'{rel}: the build marked this page as failed: {p["failed"]}'
    assert not p['errors'], f'{rel}: a cell shows an error: {p["errors"][0]}'
    tb = [o['text'] for o in p['outputs'] if 'Traceback (most recent call last)' in o['text']]
    assert not tb, f'{rel}: a cell shows a traceback: {tb[0][:500]}'
    bad = [i['src'] for i in p['images'] if not i['ok']]
    assert not bad, f'{rel}: {len(bad)} image(s) did not load, e.g. {bad[0]}'
    text = [o['text'] for o in p['outputs'] if AS_TEXT.search(o['text'])]
    assert not text, f'{rel}: a plot or a widget is shown as text: {text[0][:300]!r}'
    for w in p['widgets']:
        assert w['imgs'] or 'needs a live Jupyter kernel' in w['text'], f'{rel}: a widget snapshot without its plot: {w["text"]!r}'
    assert p['typeset'] == p['math'] and not p['math_errors'], \
        f'{rel}: {p["math"]} formulas, {p["typeset"]} typeset by MathJax, {p["math_errors"]} with a TeX error'
    assert not crawl['console'].get(p['url']), f'{rel}: errors in the page: {crawl["console"][p["url"]]}'

def test_nothing_fetched_from_outside(crawl):
    "Every asset is local: MathJax, fonts, scripts, stylesheets and images; nothing from another host"
    remote = sorted({a for p in crawl['pages'].values() for a in p['assets']
                     if a and not a.startswith(crawl['server']) and not a.startswith('data:')})
    assert not remote, f'pages load assets from elsewhere: {remote[:10]}'
    assert not crawl['remote'], f'the browser tried to leave this machine: {crawl["remote"][:10]}'

def test_internal_links_resolve(crawl):
    "Every link inside the site lands on a page of the site (or a file it has), at an anchor that exists there"
    pages, base = crawl['pages'], crawl['server']
    broken, n = [], 0
    for rel, p in pages.items():
        for l in p['links']:
            url = l['url']
            if not url.startswith(base.split('/', 3)[0] + '//' + urlsplit(base).netloc): continue   # another host: not followed
            n += 1
            u = urlsplit(url)
            if not u.path.startswith(urlsplit(base).path):
                broken.append(f'{rel}: {l["href"]} leaves the site\'s base path'); continue
            target = unquote(u.path[len(urlsplit(base).path):]) or 'index.html'
            if target.endswith('/'): target += 'index.html'
            if target not in pages:
                if not (SITE/target).is_file(): broken.append(f'{rel}: {l["href"]} -> {target} does not exist')
                continue
            if u.fragment and unquote(u.fragment) not in pages[target]['ids']:
                broken.append(f'{rel}: {l["href"]} -> no #{u.fragment} in {target}')
    SUMMARY['internal links checked'] = n
    SUMMARY['external links (not followed)'] = sum(len(p['links']) for p in pages.values()) - n
    assert not broken, f'{len(broken)} broken internal link(s):\n' + '\n'.join(broken[:30])

def test_the_course_is_all_there(crawl):
    "A front page, a page per notebook, an API page per module, and the sidebar in the chapter's order on every page"
    pages = crawl['pages']
    nbs = {p.stem for p in (REPO/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.'))}
    missing = [page_name(s) if s != 'index' else 'index.html' for s in nbs]
    missing = [m for m in missing if m not in pages] + [f'api/{m}.html' for m in MODULES if f'api/{m}.html' not in pages]
    assert not missing, f'pages missing from the site: {missing}'
    order = [('index.html' if s == 'index' else page_name(s)) for s in CHAPTER + APPENDIX if s in nbs]
    base = urlsplit(crawl['server']).path
    for rel, p in pages.items():
        side = [unquote(urlsplit(u).path[len(base):]) for u in p['sidebar']]
        lessons = [s for s in side if not s.startswith('api/')]
        assert lessons == order, f'{rel}: the sidebar lists {lessons}, expected {order}'
        assert [s for s in side if s.startswith('api/')] == ['api/index.html'] + [f'api/{m}.html' for m in MODULES]
    import importlib
    for m in MODULES:
        names = importlib.import_module(f'pets_course.{m}').__all__
        ids = set(pages[f'api/{m}.html']['ids'])
        lost = [n for n in names if html_id(n) not in ids]
        assert not lost, f'api/{m}.html does not document {lost}'

def _shoot(browser, url, path, scroll_to=None):
    page = browser.new_page()
    page.goto(url, wait_until='load')
    page.evaluate("async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; }")
    if scroll_to:
        page.evaluate("""(sel) => { const e = document.querySelector(sel); if (e) e.scrollIntoView({block: 'center'}); }""", scroll_to)
        page.wait_for_timeout(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.close()

def test_search(crawl, browser):
    "The theme's search box, as a reader uses it: Ctrl+K, 'cross-entropy', Enter; the cross-entropy lesson is found"
    page = browser.new_page()
    page.goto(crawl['server'] + 'index.html', wait_until='load')
    page.keyboard.press('Control+k')
    box = page.locator('#pst-search-dialog input[name="q"]')
    box.wait_for(state='visible', timeout=10_000)
    box.fill('cross-entropy')
    box.press('Enter')
    page.wait_for_url(re.compile(r'search\.html\?q=cross-entropy'), timeout=10_000)
    page.wait_for_function("() => { const s = document.querySelector('#search-results .search-summary');"
                           " return s && s.innerText.trim().length > 0; }", timeout=30_000)
    hits = page.evaluate("() => [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.getAttribute('href'))")
    pages_hit = [h.split('#')[0].split('?')[0] for h in hits]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS/'search_results.png'))
    page.close()
    SUMMARY['search "cross-entropy"'] = f'{len(hits)} results; cross_entropy.html ranks {pages_hit.index("cross_entropy.html") + 1 if "cross_entropy.html" in pages_hit else "nowhere"}'
    assert 'cross_entropy.html' in pages_hit, f'searching "cross-entropy" does not find the lesson: {hits[:10]}'
    assert not crawl['remote'] and not browser.remote_requests, f'the search left this machine: {browser.remote_requests[:5]}'

def test_screenshots(crawl, browser):
    "The front page, a lesson with formulas and a plot, an API page and a widget snapshot, as a reader sees them"
    pages, server = crawl['pages'], crawl['server']
    _shoot(browser, server + 'index.html', SHOTS/'front_page.png')
    _shoot(browser, server + 'cross_entropy.html', SHOTS/'lesson_page.png', '.math mjx-container[display="true"]')
    order = [page_name(s) for s in CHAPTER[1:] + APPENDIX]
    plot = next((r for r in order if r in pages and any(i['output'] and not i['widget'] for i in pages[r]['images'])), None)
    assert plot, 'no lesson page has a plot'
    _shoot(browser, server + plot, SHOTS/'lesson_with_plot.png', '.cell_output img:not(.site-widget img)')
    _shoot(browser, server + 'api/data.html', SHOTS/'api_page.png', '#pets-dataloaders')
    if 'widgets.html' in pages and pages['widgets.html']['widgets']:
        _shoot(browser, server + 'widgets.html', SHOTS/'widget_snapshot.png', '.site-widget')
    SUMMARY['screenshots'] = f'{SHOTS} (lesson: cross_entropy.html; lesson with a plot: {plot}; search: search_results.png)'
