"""Make README.md from nbs/index.ipynb (what `nbdev_readme` does, without Quarto).

  python .ci/readme.py                 write README.md
  python .ci/readme.py --check         exit 1 if README.md differs from what index.ipynb gives
  python .ci/readme.py --test-command  print the quick start's test command (the line starting `nbdev_test`)
"""
import json, os, sys, tempfile
from pathlib import Path
from notebooks import ROOT as root, config, directives, without_directives  # .ci/notebooks.py: directives and settings read by nbdev

nb_path, readme = root/config().nbs_path/config().readme_nb, root/'README.md'
banner = '<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->\n\n'

def to_markdown(nb):
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']).rstrip()
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code':
            d = {k: ' '.join(v) for k, v in directives(src).items()}
            if 'hide' in d or 'exporti' in d or 'eval' in d or 'echo' in d and d['echo'] == 'false': continue
            code = without_directives(src).strip()
            if code: parts.append(f'```python\n{code}\n```')
            for o in cell.get('outputs', []):
                text = o.get('text') or o.get('data', {}).get('text/plain')
                if text: parts.append('```\n' + ''.join(text).rstrip() + '\n```')
    return banner + '\n\n'.join(p for p in parts if p) + '\n'

def main(args):
    md = to_markdown(json.loads(nb_path.read_text(encoding='utf-8')))
    if '--test-command' in args:
        cmds = [l.strip() for l in md.splitlines() if l.strip().startswith('nbdev_test')]
        if not cmds: sys.exit('README.md has no line starting with `nbdev_test` in its quick start')
        print(cmds[0]); return
    if '--check' in args:
        if not readme.exists() or readme.read_text(encoding='utf-8') != md:
            sys.exit('FAIL: README.md is out of sync with nbs/index.ipynb; run `python .ci/readme.py` and commit')
        print('README.md is in sync with nbs/index.ipynb'); return
    fd, tmp = tempfile.mkstemp(dir=root, prefix='.README.', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(md)
    os.replace(tmp, readme)
    print(f'wrote {readme.relative_to(root)}')

if __name__ == '__main__': main(sys.argv[1:])
