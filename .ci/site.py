"""Build the course website into `_site/`: every notebook executed and processed as `nbdev_docs` processes it, then
rendered by Sphinx (myst-nb, sphinx-book-theme: pages, theme, search, checked cross-references). Offline.

  python .ci/site.py                  build the whole site (a clean _site/)
  python .ci/site.py --only 00_data   redo some notebooks (names, stems or page names; `api`), keep the others
  python .ci/site.py --mode tiny      run every notebook in one mode (default: the table MODES below)
  python .ci/site.py --fresh          ignore the execution cache in _site_proc/exec/ (a clean clone has none)
  python .ci/site.py --jobs 1         notebooks executed at a time (default 2)

The glue, what Sphinx cannot know: 1. run each notebook in a Jupyter kernel (nbclient), in the mode MODES gives it,
leaving out what `nbdev_test` leaves out (.ci/notebooks.py), a widget kept as a snapshot; 2. nbdev's processors (`#| hide`,
`show_doc`, doc links, ...: `site_procs`); 3. write it for myst-nb: title, mode, cell tags, a label before each definition
for nbdev's doc links, the sidebar; an API page per module; `sphinx-build -W` (.ci/sphinx/conf.py), where a reference
that lands nowhere fails the build, as a notebook that failed does (its page says where).
"""
from __future__ import annotations
import argparse, ast, hashlib, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
import nbformat
from execnb.nbio import nb2dict, read_nb
from fastcore.basics import AttrDict
from nbdev.process import NBProcessor, extract_directives
sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebooks import tst_flags, skipped          # what nbdev_test leaves out, read with nbdev (.ci/notebooks.py)
from site_widgets import widget_html              # a page has no kernel to draw a widget: a snapshot of it

ROOT = Path(__file__).resolve().parent.parent
CONF = Path(__file__).resolve().parent/'sphinx'   # conf.py and _static/
PROC = ROOT/'_site_proc'          # scratch: the kernels' folder, the execution cache, Sphinx's sources and build, logs
SRC = PROC/'src'

# tiny (888 drawn cartoons) is the default: fast and what the tests use. `sample` (185 real Oxford photos shipped with
# the package) where the lesson is about looking at the photos and at what the model gets wrong on them.
MODES = {
    '00_data':      ('sample', 'the lesson looks at the data set itself: real photos, presizing crops and a `DataBlock` '
                               'summary read much better on photos than on cartoons'),
    '02_get_preds': ('sample', 'interpretation (the confusion matrix, the most confused breeds, the top losses) is about '
                               'real look-alike breeds, which the drawn set does not have'),
}
DEFAULT_MODE = ('tiny', 'the drawn data set: the fastest, what `nbdev_test` runs; the numbers the prose states are the ones '
                        'it checks')
MODE_WORDS = {'tiny': 'the `tiny` mode (888 drawn cartoon pets, EfficientNet-Lite0, CPU)',
              'sample': 'the `sample` mode (185 real Oxford-IIIT Pet photos shipped with the package, EfficientNet-Lite0, CPU)',
              'oxford': 'the `oxford` mode (the book\'s data set and resnet34)'}
CHAPTER_END = 10                  # notebooks numbered below 10 are the chapter, the others the appendix
CELL_TIMEOUT = int(os.environ.get('SITE_CELL_TIMEOUT', 1800))        # seconds one cell may run
EXEC_VERSION = 3                  # bump to invalidate the execution cache (3: widgets stored as their snapshot)
SKIPPED_NOTE = ('A book-scale cell (`#| {}`): not run for this page, as `nbdev_test` does not run it. In the book\'s mode '
                '(`oxford`) it shows what it describes; in the other modes it prints one line saying so.')

def site_plan() -> dict:
    "The pages (nbdev's names: `00_data.ipynb` -> `data`, where its doc links point), their titles and modules, the sidebar"
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    from nbdev.frontmatter import FrontmatterProc
    cfg = get_config(path=ROOT)
    nbs = sorted((Path(p) for p in nbglob(cfg.nbs_path, func=Path)), key=lambda p: (p.stem != 'index', p.name))
    pages, nav = {}, {'The chapter': [], 'Appendix': [], 'API reference': ['api/index']}
    for nb in nbs:
        p, (mode, why) = NBProcessor(nb, procs=FrontmatterProc, process=True).nb, MODES.get(nb.stem, DEFAULT_MODE)
        page, n = re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.stem.lower()), re.match(r'\d+', nb.stem)
        module = next((c.directives_['default_exp'][0] for c in p.cells if 'default_exp' in c.directives_), None)
        title = str((getattr(p, 'frontmatter_', None) or {}).get('title', nb.stem))
        pages[nb.stem] = dict(nb=str(nb.relative_to(ROOT)), page=page, title=title, module=module, mode=mode, why=why)
        if n: nav['Appendix' if int(n[0]) >= CHAPTER_END else 'The chapter'].append(page)
        if module: nav['API reference'].append(f'api/{module}')
    return dict(pages=pages, nav=nav, git_url=cfg.git_url.rstrip('/'), branch=cfg.get('branch', 'main'),
                site_url=cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/')

# == 1. execution (nbclient) ==========================================================================================

def execute(nb_path:Path, mode:str, fresh:bool, env:dict, log) -> tuple[object, dict]:
    "Run the notebook in a kernel, or take it from the cache (the key: its source, the package, the mode)"
    from nbclient import NotebookClient
    flags = tst_flags()

    class SiteClient(NotebookClient):
        "nbclient, skipping what `nbdev_test` skips"
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self.site_cell = cell_index
            if cell.cell_type == 'code':
                d = extract_directives(AttrDict(source=cell.source), remove=False)
                if skipped(AttrDict(cell_type='code', source=cell.source, directives_=d), flags):
                    if flags & d.keys(): cell.metadata['site_skipped'] = sorted(flags & d.keys())[0]
                    return cell
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            for out in cell.get('outputs', []):   # each widget as the cell left it
                view = out.get('data', {}).get('application/vnd.jupyter.widget-view+json')
                if view: out['data'] = {'text/html': widget_html(self.widget_state, self.widget_buffers, view.get('model_id'))}
            return cell

    h = hashlib.sha256(f'{EXEC_VERSION} {mode}\n'.encode()); h.update(nb_path.read_bytes())
    for p in sorted((ROOT/'pets_course').rglob('*.py')): h.update(p.name.encode()); h.update(p.read_bytes())
    cached = PROC/'exec'/f'{nb_path.stem}.{mode}.{h.hexdigest()[:20]}.ipynb'
    if cached.exists() and not fresh: return nbformat.read(cached, as_version=4), dict(ok=True, cached=True, seconds=0.)
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    client, t, info = SiteClient(nb, timeout=CELL_TIMEOUT, kernel_name='python3', resources={'metadata': {'path': str(PROC/'run'/'nbs')}}), \
        time.monotonic(), dict(ok=True, cached=False)
    try: client.execute(env=env, stdout=log, stderr=log)
    except Exception as e:   # a cell raised, timed out, or the kernel died: the page says where
        i = getattr(client, 'site_cell', None)
        first = next((l for l in (nb.cells[i].source if i is not None else '').splitlines() if l.strip() and not l.startswith('#|')), '')
        msg = f'{getattr(e, "ename", type(e).__name__)}: {getattr(e, "evalue", "") or (str(e).strip().splitlines() or [""])[-1]}'
        info.update(ok=False, cell=i, first_line=first[:120], error=msg[:400])
    info['seconds'] = round(time.monotonic() - t, 1)
    if info['ok']:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob(f'{nb_path.stem}.{mode}.*.ipynb'): old.unlink()
        nbformat.write(nb, cached)
    return nb, info

# == 2. nbdev's processing ============================================================================================

def site_procs():
    "nbdev's processors for the docs (`FilterDefaults().procs()`, honouring settings.ini), with two changes"
    from nbdev.process import Processor
    from nbdev.processors import FilterDefaults, exec_show_docs

    class show_export_source(Processor):
        """Change 1: an `#| export` cell is shown as nbdev shows an `#| exports` cell (its source, then the `show_doc`
        of what it defines): in this course the code IS the lesson, and `nbdev_docs` would hide it."""
        def cell(self, cell):
            d = cell.directives_
            if cell.cell_type == 'code' and 'export' in d and 'hide' not in d: d['exports'] = d.pop('export')

    class exec_show_docs_kept(exec_show_docs):
        """Change 2: `exec_show_docs` re-runs the exported cells, the imports and the `show_doc` cells in a fresh shell.
        The notebook already ran in a kernel, so only `show_doc` cells take the fresh shell's outputs; a cell that
        imports AND computes runs only its imports there (re-running it out of context could fail or retrain)."""
        def __call__(self, cell):
            if cell.cell_type != 'code' or getattr(cell, 'has_sd', False) or re.search(r'^show_doc', cell.source, re.M):
                return super().__call__(cell)
            src, outs = cell.source, cell.get('outputs', [])
            if not (cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}):
                try: cell.source = '\n'.join(ast.unparse(n) for n in ast.parse(src).body if isinstance(n, (ast.Import, ast.ImportFrom)))
                except SyntaxError: cell.source = ''
            try: super().__call__(cell)
            finally: cell.source, cell['outputs'] = src, outs

    return [show_export_source] + [exec_show_docs_kept if p is exec_show_docs else p for p in FilterDefaults().procs()]

# == 3. the notebook myst-nb renders ===================================================================================

def relink(md:str, plan:dict, depth:int=0) -> str:
    """nbdev's links to the published site (`.../data.html#name`) as references to the label before that definition,
    links to a notebook (`10_modes.ipynb#the-seed`) as links to its page: Sphinx resolves both, or the build fails"""
    def sub(m):
        url = m[1]
        if url.startswith(plan['site_url']):
            page, _, frag = url[len(plan['site_url']):].partition('#')
            return f']({"#" + frag if frag else "../" * depth + page.removesuffix(".html") + ".ipynb"})'
        n = re.match(r'(?:\./)?([^/:#]+)\.ipynb(#.*)?$', url)
        return f']({"../" * depth}{plan["pages"][n[1]]["page"]}.ipynb{n[2] or ""})' if n and n[1] in plan['pages'] else m[0]
    md = re.sub(r'#LNone\)', ')', md)                                     # nbdev 2.4.14 finds no line number
    md = re.sub(r'(\]\([^)\s]+\))\{[^}]*\}', r'\1', md)                  # Pandoc's {target=...} after show_doc's links
    md = re.sub(r'(\[source\]\([^)\s]+\))\s*(#+ [^\n]+)', r'\2\n\n\1', md)    # show_doc's source link under its heading
    return re.sub(r'\]\(([^)\s]+)\)', sub, md)

def def_labels(src:str) -> list[str]:
    "The anchors nbdev's doc links (`_modidx.py`) give what a cell defines: `name` (`Class.name` if patched), `class.method`"
    from nbdev.showdoc import showdoc_nm
    try: defs = [n for n in ast.parse(src).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    except SyntaxError: return []
    return [x.lower() for n in defs for x in [str(showdoc_nm(n))] + [f'{n.name}.{m.name}' for m in getattr(n, 'body', [])
            if isinstance(n, ast.ClassDef) and isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]]

def to_myst(nbx, plan:dict, info:dict, res:dict) -> dict:
    "The processed notebook as myst-nb reads it: title block, cell tags instead of Quarto's options, labels, snapshots"
    from nbformat.v4 import new_markdown_cell as md
    fm, index = getattr(nbx, 'frontmatter_', {}) or {}, info['nb'] == 'nbs/index.ipynb'
    head = [f'# {fm.get("title", info["title"])}', fm.get('description') or '']
    if not index:
        why = info['why'] if res['mode'] == info['mode'] else 'the build asked for it'
        head.append(f'{{.site-meta}}\nRan in {MODE_WORDS.get(res["mode"], res["mode"])}, because {why}. '
                    f'The notebook: [{info["nb"]}]({plan["git_url"]}/blob/{plan["branch"]}/{info["nb"]}).')
    if not res['ok']:
        head.append(f'```{{error}}\n:class: site-failed\nThis page failed to build: cell {res.get("cell")} (counting from 0, '
                    f'markdown cells included), `{res.get("first_line", "")}`, raised {res.get("error", "")}. '
                    'The notebook stopped there; the cells after it have no outputs.\n```')
    cells = [md('\n\n'.join(h for h in head if h))]
    for c in nb2dict(nbx)['cells']:
        c = {k: v for k, v in c.items() if k in ('cell_type', 'source', 'metadata', 'outputs', 'execution_count', 'id')}
        c['source'] = ''.join(c['source'])
        if c['cell_type'] == 'raw': continue                                   # nbdev's front matter
        if c['cell_type'] == 'markdown': c['source'] = relink(c['source'], plan); cells.append(c); continue
        d = {k.rstrip(':'): (v[0] if v else '') for k, v in extract_directives(AttrDict(source=c['source']), remove=False).items()}
        lines = c['source'].splitlines()               # the Quarto options nbdev leaves at the top of the cell
        while lines and lines[0].lstrip().startswith('#|'): lines.pop(0)
        c['source'], tags = '\n'.join(lines).strip('\n'), c['metadata'].setdefault('tags', [])
        if d.get('include') == 'false': continue
        if d.get('output') == 'false': c['outputs'] = []
        if d.get('echo') == 'false' or not c['source'].strip(): tags.append('remove-input')
        tags += [t for k, t in (('source_hidden', 'hide-input'), ('outputs_hidden', 'hide-output')) if c['metadata'].get('jupyter', {}).get(k)]   # folded in JupyterLab
        if not c['outputs'] and 'remove-input' in tags: continue
        for o in c['outputs']:
            data = o.get('data', {})
            for k in ('application/javascript', 'application/vnd.jupyter.widget-state+json'): data.pop(k, None)
            if 'text/markdown' in data:   # show_doc's: its `---` would be a transition inside a cell, which docutils refuses
                data['text/markdown'] = relink(re.sub(r'^---$', '', ''.join(data['text/markdown']), flags=re.M), plan)
            if 'text/html' in data: data['text/html'] = re.sub(r'<script\b.*?</script>', '', ''.join(data['text/html']), flags=re.S | re.I)
        labels = def_labels(c['source']) if 'code-fold' in d else []    # nbdev folds the cells it exports
        if labels: cells.append(md('\n'.join(f'({l})=' for l in labels)))
        cells.append(c)
        if c['metadata'].get('site_skipped'): cells.append(md(SKIPPED_NOTE.format(c['metadata']['site_skipped'])))
    if index: cells += [md(f'```{{toctree}}\n:hidden:\n:caption: {k}\n' + '\n'.join(v) + '\n```') for k, v in plan['nav'].items()]
    nb = dict(nb2dict(nbx), cells=cells)
    nb['metadata'].pop('widgets', None)
    return nb

# == the build ==========================================================================================================

def run_page(name:str, mode:str, plan:dict, fresh:bool, threads:int):
    "Run one notebook in its own kernel, in its data mode (the kernel's own messages go to _site_proc/logs/)"
    env = {k: v for k, v in os.environ.items() if k not in ('MPLBACKEND', 'IN_TEST')}   # the kernels draw inline
    env.update(PETS_COURSE_DATA=mode, PETS_COURSE_THREADS=env.get('PETS_COURSE_THREADS', str(threads)))
    with open(PROC/'logs'/f'{name}.log', 'w') as log: nb, res = execute(ROOT/plan['pages'][name]['nb'], mode, fresh, env, log)
    return nb, dict(res, name=name, page=plan['pages'][name]['page'] + '.html', mode=mode)

def process_page(nb, res:dict, plan:dict) -> dict:
    "nbdev's processing of an executed notebook, and the notebook myst-nb reads (in the main thread: nbdev runs a shell)"
    info = plan['pages'][res['name']]
    try:
        (PROC/'proc').mkdir(exist_ok=True); nbformat.write(nb, path := PROC/'proc'/Path(info['nb']).name)
        NBProcessor(nb=(nbx := read_nb(path)), procs=site_procs()).process()   # nbdev reads the notebook's path too
        (SRC/f'{info["page"]}.ipynb').write_text(json.dumps(to_myst(nbx, plan, info, res), indent=1, ensure_ascii=False))
    except Exception as e:
        import traceback; traceback.print_exc()
        res.update(ok=False, error=f'nbdev processing: {type(e).__name__}: {str(e)[:300]}')
    return res

def build_api(plan:dict) -> dict:
    "One page per module: nbdev's `show_doc` (signature, docstring, parameters) of every name in its `__all__`; an index"
    import importlib, inspect
    from nbdev.showdoc import show_doc
    problems, rows, lessons = [], [], {v['module']: v for v in plan['pages'].values() if v['module']}
    (SRC/'api').mkdir(parents=True, exist_ok=True)
    for m, lesson in lessons.items():
        mod = importlib.import_module(f'pets_course.{m}')
        names, doc = list(getattr(mod, '__all__', [])), (inspect.getdoc(mod) or '').strip()
        md = [f'# pets_course.{m}', doc, f'Taught in [{lesson["title"]}](../{lesson["page"]}.ipynb). `pets_course.{m}.__all__` has {len(names)} names.']
        for nm in names:
            obj = getattr(mod, nm, None)
            if inspect.isfunction(obj) or inspect.isclass(obj) or callable(obj) and hasattr(obj, '__wrapped__'):
                try: md.append(relink(show_doc(obj, name=nm, title_level=3)._repr_markdown_(), plan, 1).replace('---\n', '', 1))
                except Exception as e: problems.append(f'pets_course.{m}.{nm}: show_doc failed: {type(e).__name__}: {e}')
                home = getattr(obj, '__module__', '') or ''
                if home.startswith('pets_course.') and home != f'pets_course.{m}':
                    md.append(f'Defined in [`{home}`]({home.split(".", 1)[1]}.md#{nm.lower()}), re-exported here.')
            else: md.append(f'### {nm}\n\n`{type(obj).__name__}`\n\n```python\n{nm} = {repr(obj)[:400]}\n```')
        (SRC/'api'/f'{m}.md').write_text('\n\n'.join(md) + '\n')
        rows.append(f'| [`pets_course.{m}`]({m}.md) | {len(names)} | {doc.split(chr(10) * 2)[0].replace(chr(10), " ")} |')
    (SRC/'api'/'index.md').write_text('# API reference\n\nEvery module of the package, with the names it exports. The lessons '
                                      'define and test them; these pages list them in one place.\n\n| module | names | '
                                      'what it is for |\n|---|---|---|\n' + '\n'.join(rows) + '\n')
    return dict(name='api', page='api/', mode='-', ok=not problems, error='; '.join(problems)[:800])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='_site', help='the folder to write (default _site/)')
    ap.add_argument('--only', nargs='*', default=None, help='redo only these notebooks (or `api`); keep the other pages')
    ap.add_argument('--mode', default=None, help='run every notebook in this mode instead of the table MODES')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('SITE_JOBS', 2)), help='notebooks run at a time')
    ap.add_argument('--fresh', action='store_true', help='ignore the execution cache')
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    t0, out, plan = time.monotonic(), (ROOT/a.out).resolve(), site_plan()
    names = [k for k in plan['pages'] if not a.only or any(o.removesuffix('.ipynb').removesuffix('.html') in (k, plan['pages'][k]['page']) for o in a.only)]
    if a.only and not names and 'api' not in a.only: sys.exit(f'--only: no such notebook; expected one of {", ".join(plan["pages"])} or api')
    if not a.only: shutil.rmtree(SRC, ignore_errors=True)      # a full build starts from clean sources
    for d in ('run/nbs', 'src', 'logs'): (PROC/d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT/'settings.ini', PROC/'run'/'settings.ini')   # the kernels' scratch folder, as tests/e2e has it
    os.environ['IN_TEST'] = '1'                                # as nbdev's own docs build has it while it processes
    todo = sorted(((n, a.mode or plan['pages'][n]['mode']) for n in names), key=lambda t: t[1] != 'sample')   # long runs first
    jobs = max(1, a.jobs); threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f'site: {len(todo)} notebook(s) to run (or take from the cache) and process, {jobs} at a time', flush=True)
    def say(r): return print(f'  {"ok  " if r["ok"] else "FAIL"} {r["page"]:<20} {r["mode"]:<7} ' + ('cached run' if r.get('cached')
                             else f'ran {r["seconds"]} s' if 'seconds' in r else '') + ('' if r['ok'] else f'  <- {r["error"][:200]}'), flush=True) or r
    with ThreadPoolExecutor(jobs) as ex:   # the kernels run in parallel; nbdev processes each notebook as it is done
        results = [say(process_page(*f.result(), plan)) for f in as_completed([ex.submit(run_page, *t, plan, a.fresh, threads) for t in todo])]
    if not a.only or 'api' in a.only: results.append(say(build_api(plan)))
    t1 = time.monotonic()
    print(f'site: sphinx-build ({"incremental" if a.only else "all pages"}) into {a.out}/', flush=True)
    rc = subprocess.run([sys.executable, '-m', 'sphinx', '-b', 'html', '-c', str(CONF), '-d', str(PROC/'doctrees'), '-W',
                         '--keep-going', '-q'] + ([] if a.only else ['-E']) + [str(SRC), str(PROC/'html')], cwd=ROOT).returncode
    if rc == 0: shutil.rmtree(out, ignore_errors=True); shutil.copytree(PROC/'html', out)   # myst-nb writes beside its out dir
    failed, secs = [r for r in results if not r['ok']], time.monotonic() - t0
    for r in failed: print(f'FAIL {r["name"]} ({r["mode"]}): cell {r.get("cell")}, `{r.get("first_line", "")}`: {r.get("error")}')
    print(f'site: {"FAILED" if rc or failed else "OK"} in {secs:.0f} s (notebooks {t1 - t0:.0f} s, sphinx {secs - t1 + t0:.0f} s)'
          + (f': {len(failed)} page(s) failed' + (', sphinx-build failed (its warnings above)' if rc else '') if rc or failed else f', open {a.out}/index.html'))
    return 1 if failed or rc else 0

if __name__ == '__main__': sys.exit(main())
