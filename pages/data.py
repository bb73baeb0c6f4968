"""Data: what the model will see (samples, balance, pixels), and your own data and models."""

import streamlit as st

from lib.data import datasets
from lib.ui import common as ui, data as ui_data
from lib.ui.i18n import _
from lib.viz import charts

ui.require_entry()

st.title(_("Data"))
info = ui.selected_dataset()
ui.show_store_problem()
try:
    overview = ui.dataset_overview(info.name)
except (datasets.DatasetUnavailable, datasets.InvalidDataset) as problem:
    ui.dataset_error(info.name, problem)
    ui_data.own_data_sections()  # still reachable: another dataset may be the way out
    st.stop()

st.markdown(f"**{_(info.title)}**. {_(info.description)}")
if info.attribution:
    st.caption(info.attribution)
train_stats, test_stats = overview["train_stats"], overview["test_stats"]
cols = st.columns(4)
cols[0].metric(_("Training images"), f"{train_stats['shape'][0]:,}")
cols[1].metric(_("Test images"), f"{test_stats['shape'][0]:,}")
cols[2].metric(_("Image size"), " x ".join(map(str, info.input_shape)))
cols[3].metric(_("Classes"), info.num_classes)

st.subheader(_("Samples per class"))
names = ui.class_names(info.class_names)
st.plotly_chart(
    charts.image_grid_figure(overview["grid_images"], ui.class_names(overview["grid_titles"]), cols=overview["grid_columns"]),
    key="data_samples",
)

st.subheader(_("Class balance"))
st.plotly_chart(
    charts.class_distribution_figure(overview["train_counts"], overview["test_counts"], names), key="data_balance"
)

st.subheader(_("Pixels, and why we normalize them"))
left, right = st.columns(2)
with left:
    st.markdown(
        _("Stored as **{dtype}**, shape `{shape}`: values from {min} to {max}, mean {mean:.1f}, std {std:.1f}.").format(dtype=train_stats['dtype'], shape=train_stats['shape'], min=train_stats['min'], max=train_stats['max'], mean=train_stats['mean'], std=train_stats['std'])
    )
    st.plotly_chart(charts.pixel_histogram_figure(overview["pixel_sample"], title=_("Raw pixels (0-255)"), log_y=True),
                    key="data_raw_pixels")
with right:
    st.markdown(
        _("Divided by 255 they lie in [0, 1]: mean {mean_scaled:.3f}, std {std_scaled:.3f}. Small, similar-sized inputs keep the first layer's weighted sums in the range where gradients work; the tutorials' MLP-512 reaches loss ~0.07 normalized but 0.26 on raw pixels. Try it: turn normalization off on the Train page.").format(mean_scaled=train_stats['mean_scaled'], std_scaled=train_stats['std_scaled'])
    )
    st.plotly_chart(charts.pixel_histogram_figure(overview["pixel_sample_scaled"], title=_("Normalized pixels (0-1)"),
                                                  log_y=True), key="data_scaled_pixels")
st.info(
    _("**The channel axis.** Each image is stored as {input_shape} x {input_shape2}, but Conv2D layers expect height x width x channels, so the app feeds {items}: one channel for grayscale. Dense-only models flatten it anyway; without the axis a CNN cannot be built.").format(input_shape=info.input_shape[0], input_shape2=info.input_shape[1], items=' x '.join(map(str, info.input_shape))),
    icon=":material/layers:",
)

ui_data.own_data_sections()
