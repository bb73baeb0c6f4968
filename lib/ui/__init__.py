"""The Streamlit side of MNIST Studio: the only package in lib that imports Streamlit.

`common` holds what every page shares (session state, caches, sidebar, errors); each other
module serves one page or one concern (`train`, `data`, `draw`, `predictions`, `inside`,
`compare`, `lessons`, `workspace`, `layout`: narrow screens and the canvas toolbar). Pages import
them as `from lib.ui import common as ui, train as ui_train`.

May import: every other package of lib (the top layer, beside lib/cli.py).
"""
