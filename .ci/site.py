"""Build the course website into `_site/`: every notebook executed, processed as `nbdev_docs` processes it, rendered
to static HTML with its outputs. Offline, no Quarto, no JavaScript on the pages.

  python .ci/site.py                  build the whole site (a clean _site/)
  python .ci/site.py --only 00_data   rebuild some pages, keep the others (names, stems or page names)
  python .ci/site.py --mode tiny      run every notebook in one mode (default: the table MODES below)
  python .ci/site.py --fresh          ignore the execution cache in _site_proc/ (a clean clone has none)
  python .ci/site.py --jobs 1         notebooks executed at a time (default 2)

What it does, page by page (a worker process per notebook):
1. runs the notebook top to bottom in a Jupyter kernel (nbclient), in a scratch copy of nbs/ and in the mode the table
   MODES gives it (PETS_COURSE_DATA), skipping what `nbdev_test` skips: the book-scale cells (settings.ini's `tst_flags`,
   `#| full`: the page shows their code and a note) and `#| eval: false` cells. A learner's Run All, full cells included,
   is what tests/e2e checks. A widget a cell shows is snapshotted when that cell ends;
2. applies nbdev's own processors (nbdev.processors.FilterDefaults, what `nbdev_docs` runs before Quarto: frontmatter,
   `#| hide`, `show_doc` for every exported name, links to the API, ...), with two changes said where they are made;
3. does what Quarto would do with what nbdev leaves (`#| echo: false`, `#| output: asis`, `#| code-fold`, ...) and
   renders the notebook with nbconvert's HTMLExporter and JupyterLab's template (.ci/site_theme/): plots become PNG files,
   TeX becomes MathML (with latex2mathml; without it, TeX stays as text), widgets become a static snapshot.
Then one page per module of the API (`show_doc` of every name in its `__all__`), the stylesheets, and a check that every
internal link and image of the site resolves. A notebook that fails shows up in the summary and the build exits 1.
"""
from __future__ import annotations
import argparse, base64, copy, hashlib, html, json, math, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parent.parent
THEME = Path(__file__).resolve().parent/'site_theme'
PROC = ROOT/'_site_proc'          # scratch: the run folder, executed notebooks (the cache), logs, results

# -- what runs in which mode, and why --------------------------------------------------------------------------------
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
API_MODULES = ['data', 'losses', 'interpret', 'lr_finder', 'training', 'cli', 'widgets',
               'modes', 'tiny', 'sample', 'backbone', 'cache', 'testing']
CHAPTER_END = 10                  # notebooks numbered below 10 are the chapter, the others the appendix
CELL_TIMEOUT = int(os.environ.get('SITE_CELL_TIMEOUT', 1800))        # seconds one cell may run
NOTEBOOK_TIMEOUT = int(os.environ.get('SITE_NOTEBOOK_TIMEOUT', 3600))  # seconds one page may take
EXEC_VERSION = 2                  # bump to invalidate the execution cache

WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'
WIDGET_STATE = 'application/vnd.jupyter.widget-state+json'


# == the pages ========================================================================================================

def config():
    from nbdev.config import get_config
    return get_config(path=ROOT)

def page_of(nb_path:Path) -> str:
    "The page a notebook becomes: nbdev's own rule (`00_data.ipynb` -> `data.html`), so its doc links land on it"
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(nb_path.name)).name

def notebooks() -> list[Path]:
    "The notebooks nbdev would document, index first, then the chapter, then the appendix"
    from nbdev.doclinks import nbglob
    cfg = config()
    nbs = [Path(p) for p in nbglob(cfg.nbs_path, func=Path)]
    return sorted(nbs, key=lambda p: (p.stem != 'index', p.name))

def section_of(nb:Path) -> str:
    m = re.match(r'(\d+)', nb.stem)
    return 'Appendix' if m and int(m[1]) >= CHAPTER_END else 'The chapter'

def frontmatter(nb:Path) -> dict:
    "Title and description as nbdev reads them (its `FrontmatterProc`: the first `# title` and `> description`)"
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    p = NBProcessor(nb=read_nb(nb), procs=[FrontmatterProc])
    p.process()
    fm = dict(getattr(p.nb, 'frontmatter_', {}) or {})
    fm.setdefault('title', nb.stem)
    return fm

def site_plan(nbs:list[Path]) -> dict:
    "Titles, pages and the sidebar, shared by every worker"
    pages, nav = {}, {'The chapter': [], 'Appendix': [], 'API reference': []}
    for nb in nbs:
        fm = frontmatter(nb)
        mode, why = MODES.get(nb.stem, DEFAULT_MODE)
        pages[nb.stem] = dict(nb=str(nb.relative_to(ROOT)), page=page_of(nb), title=str(fm['title']),
                              description=str(fm.get('description', '') or ''), mode=mode, why=why)
        nav[section_of(nb)].append(dict(page=page_of(nb), title=str(fm['title']) if nb.stem != 'index' else 'Home'))
    nav['API reference'] = [dict(page='api/index.html', title='All modules')] + [
        dict(page=f'api/{m}.html', title=f'pets_course.{m}') for m in API_MODULES]
    cfg = config()
    return dict(pages=pages, nav=[dict(name=k, pages=v) for k, v in nav.items() if v],
                title=cfg.get('title', cfg.lib_name), description=cfg.get('description', ''),
                site_url=cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/',
                git_url=cfg.git_url.rstrip('/'), branch=cfg.get('branch', 'main'),
                built=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                ipynb={Path(v['nb']).name: v['page'] for v in pages.values()})


# == 1. execution (nbclient) ==========================================================================================

def directives(src:str) -> dict:
    "The `#| key: value` lines at the top of a cell, as a dict (value '' for flags)"
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', line)
        if not m:
            if line.strip(): break
            continue
        out[m[1]] = m[2]
    return out

def tst_flags() -> set[str]:
    "The flags of settings.ini's `tst_flags` (`full`): cells `nbdev_test` does not run"
    return set(str(config().get('tst_flags', '')).replace('|', ' ').split())

def make_client(nb, cwd:Path):
    from nbclient import NotebookClient
    flags = tst_flags()

    class SiteClient(NotebookClient):
        "nbclient, skipping what `nbdev_test` skips, and keeping the state of each widget a cell shows as it ended"
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self.site_cell = cell_index
            if cell.cell_type == 'code':
                d = directives(cell.source)
                if d.get('eval', '').lower() == 'false': return cell
                skip = flags & set(d)
                if skip:
                    cell.metadata['site_skipped'] = sorted(skip)[0]
                    return cell
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            for out in cell.get('outputs', []):
                view = out.get('data', {}).get(WIDGET_VIEW)
                if view and view.get('model_id'): out.setdefault('metadata', {})['site_widget'] = self.snapshot(view['model_id'])
            return cell

        def snapshot(self, root:str) -> dict:
            models, todo = {}, [root]
            while todo:
                mid = todo.pop()
                if mid in models or mid not in self.widget_state: continue
                state = copy.deepcopy(self.widget_state[mid])
                bufs = {'/'.join(map(str, k)): v['data'] for k, v in self.widget_buffers.get(mid, {}).items()}
                models[mid] = dict(state=state, buffers=bufs)
                todo += re.findall(r'IPY_MODEL_([0-9a-f]+)', json.dumps(state, default=str))
            return dict(root=root, models=models)

    return SiteClient(nb, timeout=CELL_TIMEOUT, kernel_name='python3', allow_errors=False,
                      resources={'metadata': {'path': str(cwd)}})

def exec_key(nb:Path, mode:str) -> str:
    "What an executed notebook depends on: its source, the package, the mode"
    h = hashlib.sha256(f'{EXEC_VERSION} {mode}\n'.encode())
    h.update(nb.read_bytes())
    for p in sorted((ROOT/'pets_course').rglob('*.py')): h.update(p.name.encode()); h.update(p.read_bytes())
    return h.hexdigest()[:20]

def execute(nb_path:Path, mode:str, fresh:bool) -> tuple[object, dict]:
    "Run the notebook in a kernel; returns the executed notebook and what happened"
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    key = exec_key(nb_path, mode)
    cached = PROC/'exec'/f'{nb_path.stem}.{mode}.{key}.ipynb'
    if cached.exists() and not fresh:
        return nbformat.read(cached, as_version=4), dict(ok=True, cached=True, seconds=0.)
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    client = make_client(nb, PROC/'run'/'nbs')
    t, info = time.monotonic(), dict(ok=True, cached=False)
    try: client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as e:
        i = getattr(client, 'site_cell', None)
        src = nb.cells[i].source if i is not None else ''
        first = next((l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')), '')
        last = (str(e).strip().splitlines() or [''])[-1]
        msg = f'{getattr(e, "ename", type(e).__name__)}: {getattr(e, "evalue", "") or last}'
        if isinstance(e, CellTimeoutError): msg = f'timed out after {CELL_TIMEOUT} s'
        info.update(ok=False, cell=i, first_line=first[:120], error=msg[:400])
    info['seconds'] = round(time.monotonic() - t, 1)
    if info['ok']:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob(f'{nb_path.stem}.{mode}.*.ipynb'): old.unlink()
        tmp = cached.with_suffix('.tmp'); nbformat.write(nb, tmp); os.replace(tmp, cached)
    return nb, info


# == 2. nbdev's processing ============================================================================================

def site_procs():
    "nbdev's processors for the docs (`FilterDefaults().procs()`, honouring settings.ini), with two changes"
    from nbdev.process import Processor
    from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval, _is_showdoc

    class show_export_source(Processor):
        """Change 1: an `#| export` cell is shown as nbdev shows an `#| exports` cell (its source, folded open, under
        the `show_doc` of what it defines): in this course the code IS the lesson, and `nbdev_docs` would hide it."""
        def cell(self, cell):
            d = cell.directives_
            if cell.cell_type == 'code' and 'export' in d and 'hide' not in d: d['exports'] = d.pop('export')

    class exec_show_docs_kept(exec_show_docs):
        """Change 2: nbdev's `exec_show_docs` runs the exported cells, the imports and the `show_doc` cells in a fresh
        shell to render `show_doc`. Here the notebook already ran in a kernel, so only `show_doc` cells take the
        fresh shell's outputs; a cell that imports AND computes runs only its imports (re-running it out of its context,
        as `nbdev_docs` does, can fail or redo a training), and every other cell keeps the kernel's outputs."""
        def __call__(self, cell):
            if cell.cell_type != 'code' or not _do_eval(cell): return
            if getattr(cell, 'has_sd', False) or _is_showdoc(cell): return super().__call__(cell)
            import ast
            src, outs = cell.source, cell.get('outputs', [])
            body = cell.parsed_() or []
            if not (cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}):
                cell.source = '\n'.join(ast.unparse(n) for n in body if isinstance(n, (ast.Import, ast.ImportFrom)))
            try: super().__call__(cell)
            finally: cell.source, cell['outputs'] = src, outs

    procs = list(FilterDefaults().procs())
    procs = [exec_show_docs_kept if p is exec_show_docs else p for p in procs]
    return [show_export_source] + procs

def nbdev_process(executed, name:str):
    "Apply nbdev's processors to the executed notebook; returns it as an nbformat notebook, and its frontmatter"
    import nbformat
    from execnb.nbio import read_nb, nb2dict
    from nbdev.process import NBProcessor
    path = PROC/'proc'/f'{name}.ipynb'    # nbdev names the page after the notebook's path
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, path)
    nbx = read_nb(path)
    os.environ['IN_TEST'] = '1'          # as nbdev's own docs build does while it processes
    try: NBProcessor(nb=nbx, procs=site_procs()).process()
    finally: os.environ.pop('IN_TEST', None)
    fm = dict(getattr(nbx, 'frontmatter_', {}) or {})
    d = nb2dict(nbx)
    for c in d['cells']:
        for k in [k for k in c if k not in ('cell_type', 'source', 'metadata', 'outputs', 'execution_count', 'id', 'attachments')]:
            c.pop(k)
    return nbformat.reads(json.dumps(d), as_version=4), fm   # reads joins the source lines back


# == 3. what Quarto would do next, and the HTML ========================================================================

def tex2mathml(tex:str, block:bool=False) -> str:
    try: from latex2mathml.converter import convert
    except ImportError: convert = None
    if convert is not None:
        try: return convert(tex, display='block' if block else 'inline')
        except Exception: pass
    t = html.escape(tex)
    return f'<span class="math">{"$$" if block else "$"}{t}{"$$" if block else "$"}</span>'

def slug(text:str) -> str:
    "Pandoc's (and so Quarto's) heading ids: lower case, letters, digits, `_-.` kept, spaces to dashes"
    t = re.sub(r'<[^>]+>', '', html.unescape(text)).strip().lower()
    t = re.sub(r'[^\w\s.-]', '', t)
    t = re.sub(r'\s+', '-', t)
    return re.sub(r'^[^a-z]+', '', t) or 'section'

def make_exporter():
    import jinja2
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    from traitlets.config import Config

    class SiteRenderer(IPythonRenderer):
        "nbconvert's markdown renderer, with MathML for TeX and Quarto's heading ids"
        def block_math(self, body): return tex2mathml(body, block=True)
        def inline_math(self, body): return tex2mathml(body)
        def latex_environment(self, name, body): return tex2mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', block=True)
        def heading(self, text, level, **attrs):
            i = slug(text)
            return f'<h{level} id="{i}">{text}<a class="anchor-link" href="#{i}">¶</a></h{level}>\n'

    class SiteExporter(HTMLExporter):
        @jinja2.pass_context
        def markdown2html(self, context, source):
            cell = context.get('cell', {})
            r = SiteRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=False,
                             anchor_link_text='¶')
            return MarkdownWithMath(renderer=r).render(source)

    c = Config()
    c.HTMLExporter.preprocessors = ['nbconvert.preprocessors.ExtractOutputPreprocessor']
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.ExtractOutputPreprocessor.output_filename_template = '{unique_key}_{cell_index}_{index}{extension}'
    return SiteExporter(config=c, template_name='site_theme', template_file='page.html.j2',
                        extra_template_basedirs=[str(THEME.parent)])

def md_inline(md:str) -> str:
    "A line of markdown as inline HTML"
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    h = MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(md).strip()
    return re.sub(r'^<p>(.*)</p>$', r'\1', h, flags=re.S)

# Quarto's cell options that nbdev leaves in the cells (`#| echo: false`, ...), done here as Quarto does them
def quarto_options(nb):
    cells = []
    for c in nb.cells:
        if c.cell_type == 'raw' and re.match(r'\s*---\s*\n', c.source): continue     # nbdev's frontmatter cell
        if c.cell_type != 'code': cells.append(c); continue
        d = directives(c.source)
        c.source = '\n'.join(l for l in c.source.splitlines() if not re.match(r'\s*#\|', l)).strip('\n')
        if d.get('include') == 'false': continue
        if d.get('echo') == 'false' or not c.source.strip(): c.metadata.setdefault('transient', {})['remove_source'] = True
        if d.get('output') == 'false': c.outputs = []
        if d.get('warning') == 'false':
            c.outputs = [o for o in c.outputs if not (o.get('name') == 'stderr' and 'Warning' in o.get('text', ''))]
        fold = d.get('code-fold', '').strip('"\'')
        if fold in ('true', 'show'):
            c.metadata['site_fold'] = 'show' if fold == 'show' else 'hide'
            c.metadata['site_fold_summary'] = d.get('code-summary', 'Code').strip('"\'')
            c.metadata['site_anchors'] = def_anchors(c.source)
        if not c.outputs and c.metadata.get('transient', {}).get('remove_source'): continue
        cells.append(c)
    nb.cells = cells

def def_anchors(src:str) -> list[str]:
    """The anchors nbdev's doc links point at for what an exported cell defines (`_modidx.py`: `page#name`, lower
    case; a method as `class.method`). `show_doc` gives the public names a heading; these ids also land the links to
    private helpers and methods, which have none, on their source."""
    import ast
    from nbdev.showdoc import showdoc_nm
    try: tree = ast.parse(src)
    except SyntaxError: return []
    out = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out += [str(x).lower() for x in (showdoc_nm(n) if isinstance(showdoc_nm(n), (list, tuple)) else [showdoc_nm(n)])]
            if isinstance(n, ast.ClassDef):
                out += [f'{n.name}.{m.name}'.lower() for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return out

_LINK_ATTRS = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')
def fix_outputs(nb):
    "Outputs as a static page shows them: widgets as snapshots, no scripts, nbdev's show_doc markdown for nbconvert"
    for c in nb.cells:
        for o in c.get('outputs', []):
            data = o.get('data')
            if not data: continue
            if WIDGET_VIEW in data:
                snap = o.get('metadata', {}).pop('site_widget', None)
                o['data'] = {'text/html': widget_html(snap)}
                continue
            for k in ('application/javascript', 'application/vnd.jupyter.widget-state+json'): data.pop(k, None)
            if 'text/markdown' in data:
                md = data['text/markdown']
                md = ''.join(md) if isinstance(md, list) else md
                md = re.sub(r'#LNone\)', ')', md)   # nbdev 2.4.14 finds no line number for a source link
                md = _LINK_ATTRS.sub(lambda m: f'<a href="{html.escape(m[2])}" class="site-source-link">{m[1]}</a>', md)
                data['text/markdown'] = md
            if 'text/html' in data:
                h = data['text/html']
                h = ''.join(h) if isinstance(h, list) else h
                data['text/html'] = re.sub(r'<script\b.*?</script>', '', h, flags=re.S | re.I)
    nb.metadata.pop('widgets', None)


# -- widgets: a static snapshot of the state a cell left them in ----------------------------------------------------
WIDGET_NOTE = ('A snapshot of this widget as the cell left it. In Jupyter its controls are live: run the notebook '
               'to move them.')

def widget_html(snap) -> str:
    if not snap or snap.get('root') not in snap.get('models', {}):
        return ('<div class="site-widget"><p class="site-widget-note">An interactive widget: it needs a live Jupyter '
                'kernel, so it is not shown here. Run the notebook to use it.</p></div>')
    models, esc = snap['models'], html.escape

    def fmt(v, f):
        try: return format(v, f or '')
        except (ValueError, TypeError): return str(v)

    def kids(s):
        return ''.join(render(r[len('IPY_MODEL_'):]) for r in s.get('children', []) if isinstance(r, str) and r.startswith('IPY_MODEL_'))

    def control(label, inner):
        return f'<div class="w-control"><label>{esc(label)}</label>{inner}</div>'

    def render(mid):
        m = models.get(mid)
        if m is None: return '<div class="w-unknown">[a widget whose state was not saved]</div>'
        s, bufs = m['state'], m.get('buffers', {})
        name = str(s.get('_model_name', '')).removesuffix('Model')
        desc = s.get('description') or ''
        if name in ('HBox',): return f'<div class="w-hbox">{kids(s)}</div>'
        if name in ('VBox', 'Box', 'GridBox', 'Accordion', 'Tab', 'Stack'): return f'<div class="w-vbox">{kids(s)}</div>'
        if name in ('HTML', 'HTMLMath'):
            return f'<div class="w-html">{control(desc, "") if desc else ""}{s.get("value", "")}</div>'
        if name == 'Label': return f'<div class="w-html">{esc(str(s.get("value", "")))}</div>'
        if name == 'Image':
            b64 = bufs.get('value')
            if not b64: return '<div class="w-unknown">[an empty image]</div>'
            fmt_ = s.get('format', 'png')
            size = ''.join(f' {k}="{esc(str(s[k]))}"' for k in ('width', 'height') if s.get(k))
            alt = esc(desc or 'the plot the widget draws')
            return f'<img src="data:image/{esc(fmt_)};base64,{b64}" alt="{alt}"{size}>'
        if name in ('FloatSlider', 'IntSlider', 'FloatLogSlider'):
            v, lo, hi, step = s.get('value', 0), s.get('min', 0), s.get('max', 100), s.get('step', 1)
            pos = v
            if name == 'FloatLogSlider':
                base = s.get('base', 10)
                pos = math.log(v, base) if v and v > 0 else lo
            return control(desc, f'<input type="range" disabled min="{lo}" max="{hi}" step="{step}" value="{pos}">'
                                 f'<output>{esc(fmt(v, s.get("readout_format")))}</output>')
        if name in ('FloatRangeSlider', 'IntRangeSlider'):
            v = s.get('value', [0, 0])
            return control(desc, f'<output>{esc(fmt(v[0], s.get("readout_format")))} – {esc(fmt(v[1], s.get("readout_format")))}</output>')
        if name in ('Dropdown', 'Select', 'RadioButtons', 'ToggleButtons'):
            labels, i = s.get('_options_labels', []), s.get('index')
            opts = ''.join(f'<option{" selected" if j == i else ""}>{esc(str(l))}</option>' for j, l in enumerate(labels))
            return control(desc, f'<select disabled>{opts}</select>')
        if name in ('Checkbox', 'ToggleButton'):
            return control(desc, f'<input type="checkbox" disabled{" checked" if s.get("value") else ""}>')
        if name == 'Button': return f'<div class="w-control"><button disabled>{esc(desc)}</button></div>'
        if name in ('Text', 'Textarea', 'IntText', 'FloatText', 'BoundedIntText', 'BoundedFloatText'):
            return control(desc, f'<input type="text" disabled value="{esc(str(s.get("value", "")))}">')
        if name == 'Output':
            parts = []
            for o in s.get('outputs', []):
                if o.get('output_type') == 'stream': parts.append(f'<pre>{esc("".join(o.get("text", "")))}</pre>')
                d = o.get('data', {})
                if 'image/png' in d: parts.append(f'<img src="data:image/png;base64,{d["image/png"]}" alt="output">')
                elif 'text/html' in d: parts.append(''.join(d['text/html']))
                elif 'text/plain' in d: parts.append(f'<pre>{esc("".join(d["text/plain"]))}</pre>')
            return f'<div class="w-output">{"".join(parts)}</div>'
        return f'<div class="w-unknown">[{esc(name or "a")} widget]</div>'

    return f'<div class="site-widget"><p class="site-widget-note">{WIDGET_NOTE}</p>{render(snap["root"])}</div>'


def site_resources(plan:dict, page:str, title:str, description:str, meta_html:str, failed_html:str='') -> dict:
    root = '../' * page.count('/')
    return dict(root=root, page=page, title=plan['title'], nav=plan['nav'], page_title=title,
                description=description or plan['description'],
                page_description=description, page_description_html=md_inline(description) if description else '',
                meta_html=meta_html, failed_html=failed_html,
                footer_html=(f'Built {plan["built"]} by <code>.ci/site.py</code> from the notebooks of '
                             f'<a href="{html.escape(plan["git_url"])}">{html.escape(plan["git_url"])}</a>: every cell ran, '
                             'and what it printed or drew is shown under it. Widgets are static snapshots.'))

def render_page(nb, plan:dict, page:str, title:str, description:str, meta_html:str, out:Path, failed_html:str='') -> dict:
    "Write `out/page` and its images; returns counts"
    exporter = make_exporter()
    stem = page[:-len('.html')]
    files_dir = f'{Path(stem).name}_files'
    resources = {'metadata': {'name': title}, 'unique_key': Path(stem).name, 'output_files_dir': files_dir,
                 'site': site_resources(plan, page, title, description, meta_html, failed_html)}
    body, res = exporter.from_notebook_node(nb, resources=resources)
    body = fix_links(body, page, plan)
    dest = out/page
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest.parent/files_dir, ignore_errors=True)
    for fn, data in res.get('outputs', {}).items():
        p = dest.parent/fn
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    dest.write_text(body, encoding='utf-8')
    return dict(images=body.count('<img '), files=len(res.get('outputs', {})))

def fix_links(body:str, page:str, plan:dict) -> str:
    """Links as the published site has them, relative so they also work from a folder: nbdev's absolute links to the
    docs site, and links to notebooks (`10_modes.ipynb#x`, as Quarto rewrites them) to their pages. Ids made unique."""
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(body, 'html.parser')
    root = '../' * page.count('/')
    site = plan['site_url']
    for a in soup.find_all('a', href=True):
        href = a['href']
        if href.startswith(site): href = root + href[len(site):]
        u = urlsplit(href)
        if not u.scheme and not u.netloc and u.path.endswith('.ipynb'):
            name = Path(unquote(u.path)).name
            if name in plan['ipynb']: href = root + plan['ipynb'][name] + (f'#{u.fragment}' if u.fragment else '')
        if u.scheme in ('http', 'https'): a['rel'] = 'noopener'
        a['href'] = href
    seen = {}
    for el in soup.find_all(id=True):
        i = el['id']
        if i in seen:
            seen[i] += 1; el['id'] = f'{i}-{seen[i]}'
            link = el.find('a', class_='anchor-link')
            if link: link['href'] = f'#{el["id"]}'
        else: seen[i] = 0
    for img in soup.find_all('img'):
        if img.get('alt', '').startswith('No description has been provided'): img['alt'] = 'a plot or image the cell above made'
    return str(soup)


# == the workers =======================================================================================================

def worker_notebook(name:str, mode:str, out:Path, fresh:bool) -> dict:
    import nbformat
    plan = json.loads((PROC/'plan.json').read_text())
    info = plan['pages'][name]
    nb_path = ROOT/info['nb']
    t0 = time.monotonic()
    nb, res = execute(nb_path, mode, fresh)
    res.update(name=name, page=info['page'], mode=mode)
    os.chdir(ROOT)
    try:
        nb, fm = nbdev_process(nb, nb_path.stem)
        quarto_options(nb)
        fix_outputs(nb)
    except Exception as e:  # nbdev's processing failed (a show_doc, an import): the page cannot be made
        import traceback; traceback.print_exc()
        res.update(ok=False, error=res.get('error') or f'nbdev processing: {type(e).__name__}: {str(e)[:300]}')
        return res
    words = MODE_WORDS.get(mode, f'the `{mode}` mode')
    src = f'{plan["git_url"]}/blob/{plan["branch"]}/{info["nb"]}'
    meta = (f'Ran in {md_inline(words)}, because {md_inline(info["why"]) if mode == info["mode"] else "the build asked for it"}. '
            f'The notebook: <a href="{html.escape(src)}">{html.escape(info["nb"])}</a>.') if name != 'index' else ''
    failed = (f'This page failed to build: cell {res.get("cell")} (counting from 0, markdown cells included), '
              f'<code>{html.escape(res.get("first_line", ""))}</code>, raised {html.escape(res.get("error", ""))}. '
              'The notebook stopped there; the cells after it have no outputs.') if not res['ok'] else ''
    title = str(fm.get('title', info['title']))
    res.update(render_page(nb, plan, info['page'], title, str(fm.get('description', '') or ''), meta, out, failed))
    res['seconds_total'] = round(time.monotonic() - t0, 1)
    return res

def api_names(mod) -> list[str]:
    return list(getattr(mod, '__all__', []))

def worker_api(out:Path) -> dict:
    "One page per module: signature and docstring of every name in its `__all__` (nbdev's `show_doc`), and an index"
    import importlib, inspect, nbformat
    from nbformat.v4 import new_notebook, new_markdown_cell
    from nbdev.showdoc import show_doc
    from nbdev.doclinks import NbdevLookup
    os.chdir(ROOT)
    plan = json.loads((PROC/'plan.json').read_text())
    t0, lookup, n_names, problems = time.monotonic(), NbdevLookup(), 0, []
    lesson_of = {Path(v['page']).stem: v for v in plan['pages'].values()}
    index_rows = []
    for m in API_MODULES:
        modname = f'pets_course.{m}'
        try: mod = importlib.import_module(modname)
        except Exception as e:
            problems.append(f'{modname}: import failed: {type(e).__name__}: {e}'); continue
        cells, lesson = [], lesson_of.get(m)
        doc = (inspect.getdoc(mod) or '').strip()
        if doc: cells.append(new_markdown_cell(doc))
        if lesson: cells.append(new_markdown_cell(f'Taught in [{lesson["title"]}](../{lesson["page"]}). '
                                                   f'`{modname}.__all__` has {len(api_names(mod))} names.'))
        for nm in api_names(mod):
            n_names += 1
            obj = getattr(mod, nm, None)
            home = getattr(obj, '__module__', None) if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
            if inspect.isfunction(obj) or inspect.isclass(obj) or callable(obj) and hasattr(obj, '__wrapped__'):
                try:
                    md = show_doc(obj, name=nm, title_level=3)._repr_markdown_()
                except Exception as e:
                    problems.append(f'{modname}.{nm}: show_doc failed: {type(e).__name__}: {e}')
                    md = f'---\n\n### {nm}\n\n*show_doc failed: {type(e).__name__}*'
                md = re.sub(r'#LNone\)', ')', md)
                md = _LINK_ATTRS.sub(lambda mm: f'<a href="{html.escape(mm[2])}" class="site-source-link">{mm[1]}</a>', md)
            else:
                r = repr(obj)
                r = r if len(r) <= 400 else r[:400] + ' …'
                md = f'---\n\n### {nm}\n\n`{type(obj).__name__}`\n\n```python\n{nm} = {r}\n```'
            if home and home != modname and home.startswith('pets_course.'):
                other = home.split('.', 1)[1]
                md += f'\n\n<p class="site-api-origin">Defined in <a href="{other}.html#{slug(nm)}"><code>{home}</code></a>, re-exported here.</p>'
            cells.append(new_markdown_cell(md))
        nb = new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'}})
        meta = f'The API of <code>{modname}</code>: every name in its <code>__all__</code>, with its signature and docstring.'
        render_page(nb, plan, f'api/{m}.html', modname, '', meta, out)
        first = doc.split('\n\n')[0] if doc else ''
        index_rows.append(f'| [`{modname}`]({m}.html) | {len(api_names(mod))} | {first} |')
    md = ('Every module of the package, with the names it exports. The lessons define and test them; these pages list '
          'them in one place.\n\n| module | names | what it is for |\n|---|---|---|\n' + '\n'.join(index_rows))
    render_page(new_notebook(cells=[new_markdown_cell(md)]), plan, 'api/index.html', 'API reference', '', '', out)
    return dict(name='api', page='api/', mode='-', ok=not problems, cached=False, names=n_names,
                seconds=round(time.monotonic() - t0, 1), error='; '.join(problems)[:800])


# == the build =========================================================================================================

def prepare_run_dir():
    "A scratch copy of the repository's layout for the kernels (settings.ini and an empty nbs/), as tests/e2e does"
    run = PROC/'run'
    shutil.rmtree(run, ignore_errors=True)
    (run/'nbs').mkdir(parents=True)
    shutil.copy2(ROOT/'settings.ini', run/'settings.ini')

def write_assets(out:Path):
    import nbconvert
    from jupyter_core.paths import jupyter_path
    lab = next(Path(p)/'nbconvert'/'templates'/'lab'/'static' for p in jupyter_path()
               if (Path(p)/'nbconvert'/'templates'/'lab'/'static'/'index.css').exists())
    (out/'assets').mkdir(parents=True, exist_ok=True)
    css = (lab/'index.css').read_text(encoding='utf-8') + '\n' + (lab/'theme-light.css').read_text(encoding='utf-8')
    (out/'assets'/'lab.css').write_text(css, encoding='utf-8')
    shutil.copy2(THEME/'site.css', out/'assets'/'site.css')
    (out/'.nojekyll').write_text('')   # GitHub Pages: serve the `_files` folders as they are

def check_site(out:Path) -> dict:
    "Every internal link, image and stylesheet of every page resolves (anchors included); nothing is loaded from afar"
    from bs4 import BeautifulSoup
    ids, refs, n_img, n_ext = {}, [], 0, 0
    for p in sorted(out.rglob('*.html')):
        rel = p.relative_to(out).as_posix()
        soup = BeautifulSoup(p.read_text(encoding='utf-8'), 'html.parser')
        ids[rel] = {el['id'] for el in soup.find_all(id=True)}
        for tag, attr in (('a', 'href'), ('img', 'src'), ('link', 'href'), ('script', 'src'), ('iframe', 'src')):
            for el in soup.find_all(tag):
                v = el.get(attr)
                if v is None: continue
                if tag == 'img': n_img += 1
                refs.append((rel, tag, v))
    broken, remote = [], []
    for rel, tag, v in refs:
        u = urlsplit(v)
        if u.scheme == 'data' or u.scheme == 'mailto': continue
        if u.scheme or u.netloc:
            if tag == 'a': n_ext += 1
            else: remote.append(f'{rel}: <{tag}> loads {v}')
            continue
        target = (Path(rel).parent/unquote(u.path)).as_posix() if u.path else rel
        target = os.path.normpath(target)
        if target.endswith('/') or (out/target).is_dir(): target = os.path.join(target, 'index.html')
        if not (out/target).exists(): broken.append(f'{rel}: <{tag}> {v} (no {target})'); continue
        if u.fragment and target.endswith('.html') and u.fragment not in ids.get(target, set()):
            broken.append(f'{rel}: <{tag}> {v} (no #{u.fragment} in {target})')
    n_int = sum(1 for r in refs if r[1] == 'a') - n_ext
    return dict(pages=len(ids), images=n_img, internal_links=n_int, external_links=n_ext, broken=broken, remote=remote)

def du(path:Path) -> int: return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())

def run_worker(kind:str, name:str, mode:str, out:Path, fresh:bool, threads:int) -> dict:
    "Run one worker in its own process (its own kernel, environment and memory); returns its result"
    log = PROC/'logs'/f'{name}.log'
    result = PROC/'results'/f'{name}.json'
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    for k in ('MPLBACKEND', 'IN_TEST'): env.pop(k, None)   # the kernels draw inline, as Jupyter does
    env['PETS_COURSE_DATA'] = mode if mode != '-' else 'tiny'
    env.setdefault('PETS_COURSE_THREADS', str(threads))
    env['PYTHONWARNINGS'] = env.get('PYTHONWARNINGS', '')
    cmd = [sys.executable, str(Path(__file__).resolve()), '--worker', kind, '--name', name, '--mode', mode, '--out', str(out)]
    if fresh: cmd.append('--fresh')
    t = time.monotonic()
    with open(log, 'w') as f:
        try: rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=NOTEBOOK_TIMEOUT).returncode
        except subprocess.TimeoutExpired: rc = 'timeout'
    if result.exists(): res = json.loads(result.read_text())
    else:
        tail = log.read_text(errors='replace').strip().splitlines()[-3:]
        res = dict(name=name, mode=mode, ok=False, error=f'the worker stopped ({rc}): ' + ' | '.join(tail)[-400:])
    res['wall'] = round(time.monotonic() - t, 1)
    res['log'] = str(log.relative_to(ROOT))
    return res

def resolve_names(names:list[str], plan:dict) -> list[str]:
    out = []
    for n in names:
        n = Path(n).stem if n.endswith('.ipynb') else n
        hit = [k for k, v in plan['pages'].items() if n in (k, Path(v['page']).stem, v['page'])] + (['api'] if n == 'api' else [])
        if not hit: sys.exit(f'--only {n}: no such notebook or page; expected one of {", ".join(plan["pages"])} or api')
        out += hit
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='_site', help='the folder to write (default _site/)')
    ap.add_argument('--only', nargs='*', default=None, help='build only these notebooks (or `api`); keep the other pages')
    ap.add_argument('--mode', default=None, help='run every notebook in this mode instead of the table MODES')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('SITE_JOBS', 2)), help='notebooks run at a time')
    ap.add_argument('--fresh', action='store_true', help='ignore the execution cache')
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    ap.add_argument('--name', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = (ROOT/a.out).resolve()
    os.chdir(ROOT)
    if a.worker:
        res = worker_api(out) if a.worker == 'api' else worker_notebook(a.name, a.mode, out, a.fresh)
        (PROC/'results').mkdir(parents=True, exist_ok=True)
        (PROC/'results'/f'{a.name}.json').write_text(json.dumps(res, indent=1))
        return 0

    t0 = time.monotonic()
    for d in ('logs', 'results'): (PROC/d).mkdir(parents=True, exist_ok=True)
    plan = site_plan(notebooks())
    (PROC/'plan.json').write_text(json.dumps(plan, indent=1))
    names = resolve_names(a.only, plan) if a.only else list(plan['pages']) + ['api']
    if not a.only and out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    prepare_run_dir()
    write_assets(out)
    jobs = max(1, a.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    todo = []
    for n in names:
        mode = '-' if n == 'api' else (a.mode or plan['pages'][n]['mode'])
        todo.append(('api' if n == 'api' else 'notebook', n, mode))
    todo.sort(key=lambda t: (t[2] != 'sample', t[0] == 'api'))   # the long real-photo runs first
    print(f'site: {len(todo)} pages to build into {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}, '
          f'{jobs} at a time, {threads} torch thread(s) each; logs in {(PROC/"logs").relative_to(ROOT)}/', flush=True)
    results = []
    def one(t):
        r = run_worker(*t, out, a.fresh, threads)
        status = 'ok  ' if r.get('ok') else 'FAIL'
        how = 'cached run' if r.get('cached') else f'ran {r.get("seconds", "?")} s'
        print(f'  {status} {r.get("page", t[1]):<24} {t[2]:<7} {how:<14} page {r.get("wall", 0):6.1f} s, '
              f'{r.get("images", 0)} images' + (f'  <- {" ".join(str(r.get("error")).split())[:200]}' if not r.get('ok') else ''), flush=True)
        return r
    with ThreadPoolExecutor(jobs) as ex: results = list(ex.map(one, todo))
    chk = check_site(out)
    secs, size = time.monotonic() - t0, du(out)
    failed = [r for r in results if not r.get('ok')]
    if a.only:   # a partial build: links to pages not built here are not errors
        chk['broken'] = [b for b in chk['broken'] if '(no #' in b or not b.split(' (no ')[-1].rstrip(')').endswith('.html')
                         or (out/b.split(' (no ')[-1].rstrip(')')).exists()]
    report = dict(seconds=round(secs, 1), bytes=size, results=results, **chk)
    (PROC/'report.json').write_text(json.dumps(report, indent=1))
    print(f'\nsite: {chk["pages"]} pages, {chk["images"]} images, {chk["internal_links"]} internal links '
          f'({len(chk["broken"])} broken), {chk["external_links"]} external links (not followed), '
          f'{size/2**20:.1f} MiB, built in {secs:.0f} s')
    for b in chk['broken'][:30]: print(f'  BROKEN {b}')
    for b in chk['remote'][:30]: print(f'  REMOTE {b}')
    for r in failed:
        print(f'\nFAIL {r.get("name")} ({r.get("mode")}): ' + (f'cell {r["cell"]}, `{r.get("first_line", "")}`: ' if r.get('cell') is not None else '')
              + f'{r.get("error", "")}\n     log: {r.get("log")}' + (f'; the page shows the error: {out.name}/{r["page"]}' if r.get('page') and r.get('cell') is not None else ''))
    if failed or chk['broken'] or chk['remote']:
        print(f'\nsite: FAILED ({len(failed)} page(s) failed, {len(chk["broken"])} broken link(s), '
              f'{len(chk["remote"])} remote load(s))'); return 1
    print(f'site: OK, open {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/index.html')
    return 0

if __name__ == '__main__': sys.exit(main())
