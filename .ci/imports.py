"""The package's import graph, read from the source (imports inside functions included), and any cycle in it.

  python .ci/imports.py            print each module with its lines and what it imports; exit 1 on a cycle
  python .ci/imports.py --quiet    print only the cycles, if any

An import made inside a function is still an edge: a cycle hidden that way works only as long as nobody moves the
import to the top, and a reader still has to hold both modules in their head at once.
"""
import ast, sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent/'pets_course'

def imported(mod:str, tree:ast.AST) -> dict:
    "The package modules `mod` imports, each with the line numbers of the imports (top level or inside a function)"
    out = {}
    def add(name, line):
        if name.startswith('pets_course.'): name = name.split('.')[1]
        elif name == 'pets_course': return  # `import pets_course` (its version, its folder): the package's __init__
        else: return
        if name != mod and (PKG/f'{name}.py').exists(): out.setdefault(name, []).append(line)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names: add(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # `from .x import y` / `from . import x`
                if node.module: add(f'pets_course.{node.module}', node.lineno)
                else:
                    for a in node.names: add(f'pets_course.{a.name}', node.lineno)
            elif node.module:
                add(node.module, node.lineno)
                if node.module == 'pets_course':
                    for a in node.names: add(f'pets_course.{a.name}', node.lineno)
    return out

def graph() -> dict:
    "module -> {imported module: [lines]} for every module of the package but the generated index"
    mods = sorted(p.stem for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx'))
    return {m: imported(m, ast.parse((PKG/f'{m}.py').read_text())) for m in mods}

def cycles(g:dict) -> list:
    "The strongly connected components of `g` with more than one module (Tarjan's algorithm)"
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, {}):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in g:
        if v not in index: visit(v)
    return out

if __name__ == '__main__':
    g = graph()
    if '--quiet' not in sys.argv:
        for m, deps in g.items():
            lines = len((PKG/f'{m}.py').read_text().splitlines())
            print(f"{m:12s} {lines:4d} lines  -> {', '.join(sorted(deps)) or '-'}")
    found = cycles(g)
    for c in found:
        print('cycle: ' + ' <-> '.join(c) + '   (' + '; '.join(f'{a} imports {b} at line {", ".join(map(str, g[a][b]))}'
                                                          for a in c for b in c if b in g[a]) + ')')
    if found: sys.exit(1)
    print('no import cycle among the', len(g), 'modules (imports inside functions included)')
