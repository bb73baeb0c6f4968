"""Lessons: the tutorials' ten lessons plus one on learning rates, each reproduced in one click."""

import streamlit as st

from lib.training import presets
from lib.ui import common as ui, lessons as ui_lessons
from lib.ui.i18n import _

ui.require_entry()

st.title(_("Lessons"))
st.markdown(
    _("The classic Keras tutorials teach ten lessons. Each one here trains the tutorial's **exact recipe** "
    "(architecture, optimizer, learning rate, batch size, epochs, normalization, labels) in one click, "
    "shows the number the tutorial reported next to the one we measured, and tells you where to look.")
)
found, _damaged = ui.list_runs()
latest = presets.latest_runs(found)
done = presets.lessons_done(latest)
left, right = st.columns([3, 2])
with left:
    lesson = ui_lessons.pick_lesson()
with right:
    quick = st.toggle(_("Quick try ({QUICK_LIMIT:,} training images)").format(QUICK_LIMIT=ui_lessons.QUICK_LIMIT), key=ui_lessons.QUICK,
                      help=_("Same recipe on a stratified sample: the lesson shows in a fraction of the time. "
                           "Off: the tutorial's recipe on the full data."))

ui_lessons.progress(done)
with st.container(border=True):
    ui_lessons.show_lesson(lesson, latest, quick)

with st.expander(_("Every tutorial recipe: reported vs measured here")):
    ui_lessons.recipes_overview()
