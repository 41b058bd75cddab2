"""Sphinx's configuration of the course site. `python .ci/site.py` writes the sources (the processed notebooks and the
API pages) into _site_proc/src/ and builds them with this file; everything the pages load is served from the site."""
from pathlib import Path
from nbdev.config import get_config

cfg = get_config(path=Path(__file__).resolve().parents[2])
project, author, copyright = cfg.title, cfg.author, cfg.copyright
extensions = ['myst_nb',                  # notebooks and markdown, with their stored outputs
              'sphinx-mathjax-offline',   # MathJax 3 copied into _static/ (no CDN)
              'sphinx.ext.githubpages']   # .nojekyll, so that GitHub Pages serves _static/ and _images/
exclude_patterns = ['**.ipynb_checkpoints']
suppress_warnings = ['myst.header',       # nbdev's show_doc headings are H3 under the lessons' H2 (or H1)
                     'myst.xref_ambiguous'] # `#cross_entropy` is the function's label and the lesson's name: the label wins

# the notebooks ran before (.ci/site.py, in the mode each needs): myst-nb shows their outputs, it runs nothing
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'        # show_doc's markdown output: tables, labels, math
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'attrs_block']   # attrs_block: {.site-meta} on a paragraph
myst_heading_anchors = 4                  # `[...](10_modes.ipynb#the-seed)` lands on the heading "The seed"

html_theme = 'sphinx_book_theme'
html_title = cfg.title
html_baseurl = cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/') + '/'
html_static_path = ['_static']
html_css_files = ['site.css']
html_copy_source = html_show_sourcelink = False
html_last_updated_fmt = '%Y-%m-%d'
html_theme_options = {
    'repository_url': cfg.git_url, 'repository_branch': cfg.get('branch', 'main'), 'path_to_docs': cfg.nbs_path,
    'use_repository_button': True, 'use_download_button': False, 'home_page_in_toc': True, 'show_navbar_depth': 1,
    'extra_footer': f'Built by <code>.ci/site.py</code> from the notebooks of <a href="{cfg.git_url}">{cfg.git_url}</a>: '
                    'every cell ran, and what it printed or drew is shown under it. Widgets are static snapshots.',
}
