"""Viz: pure Plotly figure builders (`charts`: curves, probabilities, confusion, samples;
`inside_charts`: activations, saliency, filters, the test-set map). Data in, `go.Figure` out;
pages only call `st.plotly_chart`, tests inspect `fig.data`.

May import: lib.i18n (chart titles and axes in the visitor's language), lib.data, lib.models, lib.training, lib.store, lib.execution.
"""
