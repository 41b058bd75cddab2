"""A static snapshot of an ipywidget for the course site (.ci/site.py): a page has no kernel, and a widget manager would
have to be fetched, so each widget a cell shows is kept as HTML when the cell ends, from the state nbclient keeps of every
widget model: its pictures (an `Image`'s PNG), its readouts (`HTML`), each control's value. Styled by .ci/sphinx/_static/site.css."""
import html

def widget_html(state:dict, buffers:dict, root:str) -> str:
    "A static snapshot of a widget (nbclient keeps the state of every widget model): pictures, readouts, controls' values"
    esc = html.escape
    def render(mid):
        s = state.get(mid, {})
        name, desc = str(s.get('_model_name', '')).removesuffix('Model'), esc(str(s.get('description') or ''))
        kids = ''.join(render(r[10:]) for r in s.get('children', []) if str(r).startswith('IPY_MODEL_'))
        if kids or name in ('HBox', 'VBox', 'Box', 'GridBox'): return f'<div class="w-{"h" if name == "HBox" else "v"}box">{kids}</div>'
        if name in ('HTML', 'HTMLMath'): return f'<div class="w-html">{s.get("value", "")}</div>'
        if name == 'Image' and buffers.get(mid, {}).get(('value',)):
            return f'<img src="data:image/{esc(s.get("format", "png"))};base64,{buffers[mid][("value",)]["data"]}" alt="{desc or "the plot the widget draws"}">'
        if name == 'Button': return f'<button disabled>{desc}</button>'
        value = s.get('value')
        if name in ('Dropdown', 'Select', 'RadioButtons', 'ToggleButtons'): value = (s.get('_options_labels') or [''] * 99)[s.get('index') or 0]
        elif isinstance(value, float): value = format(value, s.get('readout_format') or '.3g') if 'Log' not in name else f'{value:.2e}'
        return f'<div class="w-control"><label>{desc}</label> <output>{esc(str(value))}</output></div>'
    if root not in state: return '<div class="site-widget"><p>An interactive widget: it needs a live Jupyter kernel. Run the notebook to use it.</p></div>'
    return (f'<div class="site-widget"><p class="site-widget-note">A snapshot of this widget as the cell left it. In Jupyter '
            f'its controls are live: run the notebook to move them.</p>{render(root)}</div>')
