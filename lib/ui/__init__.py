"""The Streamlit side of MNIST Studio: the only package in lib that imports Streamlit.

`common` holds what every page shares (session state, caches, sidebar, errors); each other
module serves one page or one concern (`train`, `data`, `draw`, `predictions`, `inside`,
`compare`, `lessons`, `workspace`). Pages import them as `from lib.ui import common as ui,
train as ui_train`. Everything beside this package in lib is plain Python.
"""
